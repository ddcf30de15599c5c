/**
 * JSON request bodies that Connect reads but does not parse, for the calls whose JSON decoding is
 * done here (`log-events-json.ts`, `unary-log-json.ts`): Connect decodes a request in one
 * synchronous step before any handler, `JSON.parse` of the whole body and protobuf-es `fromJson`,
 * which builds every `Struct` payload as `Value` messages, so a large body held the event loop.
 *
 * How: the adapter serving these calls is given a JSON text decoder (`jsonOptions.textDecoder`)
 * that keeps the body's bytes under a fresh key and hands Connect that key as the JSON text of a
 * `google.protobuf.StringValue`, the methods' input type there ({@link jsonBodyMethod}). An
 * interceptor that runs first takes the bytes back: for a method with a decoder it replaces the
 * message with the decoded request (so every other interceptor, the access policy included, sees
 * the request as usual); otherwise it puts the bytes in the call's context for the handler
 * ({@link JsonBodyCapture.bodyOf}). Connect still reads the body (its size cap, decompression,
 * deadline) and runs every interceptor; nothing can refuse a call between its decoding and the
 * first interceptor, so a kept body is always taken back at once.
 */
import type { DescMethod, DescMethodUnary, Message } from "@bufbuild/protobuf";
import { StringValueSchema, type StringValue } from "@bufbuild/protobuf/wkt";
import { createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";

/** `method` as the capturing adapter serves it: same service, name and path; the body's key as input. */
export function jsonBodyMethod<M extends DescMethodUnary>(method: M): M {
  return { ...method, input: StringValueSchema } as unknown as M;
}

const JSON_CONTENT_TYPE = /^application\/(?:(?:grpc(?:-web)?\+)?json)\s*(?:;|$)/i;

/** Whether an HTTP request is a POST in JSON (Connect `application/json`, or gRPC(-Web) `+json`) to one of `paths`. */
export function isJsonRequestTo(paths: ReadonlySet<string>, method: string | undefined, url: string | undefined, contentType: string | undefined): boolean {
  return method === "POST" && url !== undefined && paths.has(url) && contentType !== undefined && JSON_CONTENT_TYPE.test(contentType);
}

/** Decodes a captured body into the method's request, or throws a `ConnectError` saying why it cannot. */
export type JsonRequestDecoder = (body: Uint8Array) => Message;

const kJsonBody = createContextKey<Uint8Array | undefined>(undefined, { description: "captured JSON body" });

/** The pieces that bring a JSON body past Connect unparsed (see the module comment). */
export interface JsonBodyCapture {
  /** For the adapter's `jsonOptions`: Connect's JSON decoding of a request keeps its bytes. */
  readonly jsonOptions: { readonly textDecoder: { decode(input?: Uint8Array): string } };
  /** To run first (outermost): decodes the request, or moves the bytes into the call's context. */
  readonly interceptor: Interceptor;
  /** The call's body bytes, for a method without a decoder (empty when none was kept). */
  bodyOf(ctx: HandlerContext): Uint8Array;
}

/** A capture for one adapter; `decoders` by method (name within `AnalyticsService`). */
export function createJsonBodyCapture(decoders: ReadonlyMap<DescMethod["name"], JsonRequestDecoder> = new Map()): JsonBodyCapture {
  const kept = new Map<string, Uint8Array>();
  let next = 0;
  return {
    jsonOptions: {
      textDecoder: {
        decode(input = new Uint8Array(0)) {
          const key = String(next++);
          kept.set(key, input);
          return `"${key}"`;
        },
      },
    },
    interceptor: (call) => async (req) => {
      if (req.stream || req.method.input !== StringValueSchema) return call(req);
      const key = (req.message as StringValue).value;
      const body = kept.get(key) ?? new Uint8Array(0);
      kept.delete(key);
      const decode = decoders.get(req.method.name);
      if (decode) return call({ ...req, message: decode(body) as never });
      req.contextValues.set(kJsonBody, body);
      return call(req);
    },
    bodyOf: (ctx) => ctx.values.get(kJsonBody) ?? new Uint8Array(0),
  };
}
