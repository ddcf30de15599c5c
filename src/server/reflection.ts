/**
 * gRPC server reflection (`grpc.reflection.v1` and `v1alpha`) over protobuf-es descriptors, so
 * grpcurl, buf curl, Postman and grpc-js-reflection-client can call the server without .proto files.
 *
 * Protocol: https://github.com/grpc/grpc/blob/master/doc/server-reflection.md. Connect v2 has no
 * reflection package; this serves the descriptors embedded in the generated code.
 *
 * @module
 */
import { toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { ServerReflection as ServerReflectionV1 } from "../../sdk/src/gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../sdk/src/gen/grpc/reflection/v1alpha/reflection_pb.js";

/** Options for {@link createReflectionRoutes}. */
export interface ReflectionOptions {
  /**
   * Services to advertise in `list_services`. Both reflection services are added automatically.
   * Every file they (transitively) import can be fetched by name or symbol.
   */
  readonly services: readonly DescService[];
  /**
   * More files to serve by name or symbol (and their imports), e.g. those of the messages errors
   * carry as details: grpcurl resolves a detail's type through reflection.
   */
  readonly files?: readonly DescFile[];
}

// Structural views of the v1 and v1alpha oneofs, which differ only in their message type names,
// so one implementation answers both.
type MessageRequest =
  | {
      case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices";
      value: string;
    }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: undefined; value?: undefined };
type MessageResponse =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | {
      case: "allExtensionNumbersResponse";
      value: { baseTypeName: string; extensionNumber: number[] };
    }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

interface ReflectionIndex {
  readonly serviceNames: readonly string[];
  /** File name → serialized file followed by its transitive dependencies. */
  readonly filesByName: ReadonlyMap<string, Uint8Array[]>;
  /** Fully-qualified symbol → file name. */
  readonly fileBySymbol: ReadonlyMap<string, string>;
  readonly messageTypes: ReadonlySet<string>;
  /** Extendee message type name → extension number → file name. */
  readonly extensions: ReadonlyMap<string, ReadonlyMap<number, string>>;
}

function createReflectionIndex(services: readonly DescService[], extraFiles: readonly DescFile[]): ReflectionIndex {
  const advertised = [...services, ServerReflectionV1, ServerReflectionV1Alpha];
  const files = new Map<string, DescFile>();
  const collect = (file: DescFile): void => {
    // Keyed by proto name: two copies of @bufbuild/protobuf can hold distinct DescFile objects
    // for the same well-known type file.
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    file.dependencies.forEach(collect);
  };
  advertised.forEach((s) => collect(s.file));
  extraFiles.forEach(collect);

  // Serialized once: descriptors are immutable, and a client may ask for the same file many times.
  const serialized = new Map<string, Uint8Array>();
  const serialize = (file: DescFile): Uint8Array => {
    let bytes = serialized.get(file.proto.name);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      serialized.set(file.proto.name, bytes);
    }
    return bytes;
  };
  const filesByName = new Map<string, Uint8Array[]>();
  const fileBySymbol = new Map<string, string>();
  const messageTypes = new Set<string>();
  const extensions = new Map<string, Map<number, string>>();
  for (const [name, file] of files) {
    // The requested file first, then its transitive imports, as the C++ reference server sends
    // them: a client can build its descriptor pool from one answer, without further round trips.
    const closure = new Map<string, Uint8Array>();
    const walk = (f: DescFile): void => {
      if (closure.has(f.proto.name)) return;
      closure.set(f.proto.name, serialize(f));
      f.dependencies.forEach(walk);
    };
    walk(file);
    filesByName.set(name, [...closure.values()]);

    for (const type of nestedTypes(file)) {
      fileBySymbol.set(type.typeName, name);
      switch (type.kind) {
        case "service":
          type.methods.forEach((m) => fileBySymbol.set(`${type.typeName}.${m.name}`, name));
          break;
        case "message":
          messageTypes.add(type.typeName);
          type.fields.forEach((f) => fileBySymbol.set(`${type.typeName}.${f.name}`, name));
          type.oneofs.forEach((o) => fileBySymbol.set(`${type.typeName}.${o.name}`, name));
          // Map entry messages are real nested types in the descriptor but hidden by protobuf-es.
          type.proto.nestedType.forEach((n) => fileBySymbol.set(`${type.typeName}.${n.name}`, name));
          break;
        case "enum": {
          // Protobuf scopes enum values as siblings of their enum, not children (C++ semantics).
          const scope = type.parent?.typeName ?? file.proto.package;
          type.values.forEach((v) => fileBySymbol.set(scope ? `${scope}.${v.name}` : v.name, name));
          break;
        }
        case "extension": {
          const byNumber = extensions.get(type.extendee.typeName) ?? new Map<number, string>();
          extensions.set(type.extendee.typeName, byNumber.set(type.number, name));
          break;
        }
      }
    }
  }
  const serviceNames = [...new Set(advertised.map((s) => s.typeName))];
  return { serviceNames, filesByName, fileBySymbol, messageTypes, extensions };
}

function notFound(errorMessage: string): MessageResponse {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage } };
}

function answer(index: ReflectionIndex, request: MessageRequest): MessageResponse {
  const files = (name: string | undefined): MessageResponse | undefined => {
    const list = name === undefined ? undefined : index.filesByName.get(name);
    return list && { case: "fileDescriptorResponse", value: { fileDescriptorProto: list } };
  };
  switch (request.case) {
    case "listServices": {
      // The spec leaves the request's content unchecked (grpc-js-reflection-client sends "*").
      const service = index.serviceNames.map((name) => ({ name }));
      return { case: "listServicesResponse", value: { service } };
    }
    case "fileByFilename":
      return files(request.value) ?? notFound(`file not found: ${request.value}`);
    case "fileContainingSymbol": {
      // Some clients send a leading dot, as in FieldDescriptorProto.type_name.
      const symbol = request.value.replace(/^\./, "");
      return files(index.fileBySymbol.get(symbol)) ?? notFound(`symbol not found: ${symbol}`);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = request.value;
      return (
        files(index.extensions.get(containingType)?.get(extensionNumber)) ??
        notFound(`extension not found: ${containingType} ${extensionNumber}`)
      );
    }
    case "allExtensionNumbersOfType": {
      const type = request.value;
      if (!index.messageTypes.has(type)) return notFound(`message type not found: ${type}`);
      const extensionNumber = [...(index.extensions.get(type)?.keys() ?? [])];
      return { case: "allExtensionNumbersResponse", value: { baseTypeName: type, extensionNumber } };
    }
    case undefined: {
      // An unset or newer request kind; grpc-go answers these with UNIMPLEMENTED too.
      const error = { errorCode: Code.Unimplemented, errorMessage: "unsupported request" };
      return { case: "errorResponse", value: error };
    }
  }
}

/** The two reflection services' implementations, over one index of `options.services`. */
export interface ReflectionService {
  readonly v1: ServiceImpl<typeof ServerReflectionV1>;
  readonly v1alpha: ServiceImpl<typeof ServerReflectionV1Alpha>;
}

/** Creates both reflection services; `createRoutes` registers them (`src/server/routes.ts`). */
export function createReflectionService(options: ReflectionOptions): ReflectionService {
  const index = createReflectionIndex(options.services, options.files ?? []);
  return {
    v1: {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) {
          const messageResponse = answer(index, req.messageRequest);
          yield { validHost: req.host, originalRequest: req, messageResponse };
        }
      },
    },
    v1alpha: {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) {
          const messageResponse = answer(index, req.messageRequest);
          yield { validHost: req.host, originalRequest: req, messageResponse };
        }
      },
    },
  };
}

/**
 * Creates routes serving gRPC server reflection, both `grpc.reflection.v1.ServerReflection` and
 * the older `grpc.reflection.v1alpha.ServerReflection`, which many clients still use first or only
 * (grpc-js-reflection-client defaults to it). The descriptor index is built once here, not per
 * request.
 *
 * A bad request is answered with an `error_response` (NOT_FOUND for unknown files and symbols);
 * the stream itself stays open, as the protocol requires.
 *
 * @example
 * ```ts
 * const reflection = createReflectionRoutes({ services: [AnalyticsService, MetricsService, Health] });
 * const routes = (router: ConnectRouter) => { ...; reflection(router); };
 * ```
 */
export function createReflectionRoutes(
  options: ReflectionOptions,
): (router: ConnectRouter) => void {
  const reflection = createReflectionService(options);
  return (router) => {
    router.service(ServerReflectionV1, reflection.v1);
    router.service(ServerReflectionV1Alpha, reflection.v1alpha);
  };
}
