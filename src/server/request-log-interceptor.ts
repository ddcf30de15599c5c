/**
 * Records one `api_request_logs` row per RPC. Unary calls are logged when their response is
 * written, streams once when they end, with message counts in each direction. The row is handed
 * to the batch writer's fire-and-forget path: the interceptor never waits on the database, and a
 * failure to log never fails the call.
 *
 * It runs on every call, so it is written for that: what depends only on the procedure is worked
 * out on a procedure's first call, a client address is anonymised once while it keeps calling,
 * headers are read from Node's own header object when the HTTP layer is there, and a call's state
 * is one object rather than a closure per step.
 */
import { Code, ConnectError, type Interceptor, type StreamResponse, type UnaryResponse } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { kPrincipal } from "../auth/principal.js";
import type { Row } from "../storage/batch-writer.js";
import { clientIpOf, DEFAULT_REQUEST_LOG_SKIP, httpStatusOf, isSkipped, protocolOf, rememberPerAddress, storableText } from "./request-log-fields.js";
import { isUnauthenticatedCall } from "./request-log-shedding.js";
import { kRequestMeter, type RequestMeter } from "./request-metering.js";

/** Options for {@link createRequestLogInterceptor}. */
export interface RequestLogOptions {
  /** Receives each row; must not block (the batch writer's `offer`). */
  readonly offer: (row: Row) => void;
  /**
   * Receives the rows of unauthenticated calls instead of `offer` (see `isUnauthenticatedCall`):
   * `RequestLogSink.unauthenticated`, which keeps them within their share of the writer's buffer.
   * Default: `offer`.
   */
  readonly offerUnauthenticated?: (row: Row) => void;
  /** Procedure prefixes not logged (default {@link DEFAULT_REQUEST_LOG_SKIP}). */
  readonly skip?: readonly string[];
  /** Proxies in front of the server whose `X-Forwarded-For` entries are trusted (default 0). */
  readonly trustedProxyHops?: number;
  /**
   * Applied to client addresses before they are stored (anonymisation). Must depend on the
   * address only: results are remembered per address.
   */
  readonly anonymizeIp?: (ip: string) => string | undefined;
  /** Clock for response times (ms, fractional). */
  readonly now?: () => number;
}

/** Addresses remembered with their stored form; the memo starts over when it holds this many. */
const MAX_REMEMBERED_ADDRESSES = 1024;

/** What every call's record shares: the options, resolved once. */
interface Recorder {
  readonly offer: (row: Row) => void;
  readonly offerUnauthenticated: (row: Row) => void;
  readonly hops: number;
  readonly now: () => number;
  /** The stored form of a client address (anonymised, remembered). */
  readonly storedIp: (ip: string) => string | null;
}

/** Creates the request-log interceptor; put it first so it times everything after it. */
export function createRequestLogInterceptor(options: RequestLogOptions): Interceptor {
  const skip = options.skip ?? DEFAULT_REQUEST_LOG_SKIP;
  const anonymize = options.anonymizeIp;
  const recorder: Recorder = {
    offer: options.offer,
    offerUnauthenticated: options.offerUnauthenticated ?? options.offer,
    hops: options.trustedProxyHops ?? 0,
    now: options.now ?? (() => performance.now()),
    storedIp: anonymize ? rememberPerAddress((ip) => anonymize(ip) ?? null, MAX_REMEMBERED_ADDRESSES) : (ip) => ip,
  };
  // A procedure's name, or null when it is skipped: decided on its first call.
  const procedures = new WeakMap<DescMethod, string | null>();
  const procedureOf = (method: DescMethod): string | null => {
    let procedure = procedures.get(method);
    if (procedure === undefined) {
      const name = `/${method.parent.typeName}/${method.name}`;
      procedure = isSkipped(name, skip) ? null : name;
      procedures.set(method, procedure);
    }
    return procedure;
  };
  return (next) => (req) => {
    const procedure = procedureOf(req.method);
    if (procedure === null) return next(req);
    const call = new LoggedCall(recorder, req, procedure);
    if (req.stream) req = { ...req, message: call.countRequests(req.message) };
    let answer: Promise<UnaryResponse | StreamResponse>;
    try {
      answer = next(req);
    } catch (err) {
      answer = Promise.reject(err);
    }
    return answer.then(
      (res) => call.answered(res),
      (err: unknown) => call.failed(err),
    );
  };
}

type InterceptedRequest = Parameters<Parameters<Interceptor>[0]>[0];

/** One call being recorded. */
class LoggedCall {
  readonly #recorder: Recorder;
  readonly #req: InterceptedRequest;
  readonly #procedure: string;
  readonly #meter: RequestMeter | undefined;
  readonly #startedAtMs = Date.now();
  readonly #t0: number;
  #requestMessages: number;
  #responseMessages = 0;
  #code: Code | 0 = 0;
  #errorMessage: string | null = null;
  #callDone = false;

  constructor(recorder: Recorder, req: InterceptedRequest, procedure: string) {
    this.#recorder = recorder;
    this.#req = req;
    this.#procedure = procedure;
    this.#meter = req.contextValues.get(kRequestMeter);
    this.#t0 = recorder.now();
    this.#requestMessages = req.stream ? 0 : 1;
  }

  /** The request stream, counting its messages. */
  async *countRequests<I>(input: AsyncIterable<I>): AsyncIterable<I> {
    for await (const m of input) {
      this.#requestMessages++;
      yield m;
    }
  }

  /** The handler answered: unary answers are recorded now, streams when they end. */
  answered<T extends UnaryResponse | StreamResponse>(res: T): T {
    if (!res.stream) {
      this.#responseMessages = 1;
      this.#finish();
      return res;
    }
    return { ...res, message: this.#countResponses(res.message) };
  }

  /** The call failed before answering: recorded, and the error passed on untouched. */
  failed(err: unknown): never {
    this.#fail(err);
    this.#finish();
    throw err;
  }

  async *#countResponses<O>(output: AsyncIterable<O>): AsyncIterable<O> {
    let completed = false;
    try {
      for await (const m of output) {
        this.#responseMessages++;
        yield m;
      }
      completed = true;
    } catch (err) {
      this.#fail(err);
      completed = true;
      throw err;
    } finally {
      if (!completed && this.#code === 0) {
        this.#code = Code.Canceled;
        this.#errorMessage = "the client cancelled the stream";
      }
      if (!this.#callDone) this.#finish();
    }
  }

  #fail(err: unknown): void {
    // Only ConnectErrors carry client-safe text; anything else may hold internals (SQL, paths).
    if (err instanceof ConnectError) {
      this.#code = err.code;
      this.#errorMessage = err.rawMessage;
    } else {
      this.#code = Code.Internal;
      this.#errorMessage = "internal error";
    }
  }

  /** Sizes are final only once the HTTP response is written, which is after this interceptor. */
  #finish(): void {
    this.#callDone = true;
    const meter = this.#meter;
    if (!meter || meter.closed) this.#emit();
    else meter.onClose = () => this.#emit();
  }

  #emit(): void {
    try {
      const recorder = this.#recorder;
      const req = this.#req;
      const meter = this.#meter;
      const code = this.#code;
      // Node's own header object when the HTTP layer is there: a plain property read, where
      // `Headers.get` normalises the name and searches on every call.
      const headers = meter?.headers;
      // X-Forwarded-For is read only when proxies are trusted: otherwise it is never used.
      const forwardedFor = recorder.hops > 0 && headers ? (headerText(headers["x-forwarded-for"]) ?? undefined) : undefined;
      const ip = clientIpOf(meter?.remoteAddress, forwardedFor, recorder.hops);
      // Read when the call ends: the auth interceptor, further in, sets it once the token is good.
      const principal = req.contextValues.get(kPrincipal);
      const offer = isUnauthenticatedCall(principal, code) ? recorder.offerUnauthenticated : recorder.offer;
      offer({
        occurred_at: new Date(this.#startedAtMs),
        endpoint: this.#procedure,
        protocol: protocolOf(headers ? headerText(headers["content-type"]) : req.header.get("content-type")),
        http_method: req.requestMethod,
        status_code: code,
        http_status: httpStatusOf(code),
        response_time_ms: recorder.now() - this.#t0,
        user_id: storableText(principal?.subject),
        client_ip: ip === undefined ? null : recorder.storedIp(ip),
        user_agent: storableText(headers ? headerText(headers["user-agent"]) : req.header.get("user-agent")),
        request_bytes: meter?.requestBytes ?? 0,
        response_bytes: meter?.responseBytes ?? 0,
        request_messages: this.#requestMessages,
        response_messages: this.#responseMessages,
        error_message: storableText(this.#errorMessage),
      });
    } catch {
      // Logging is best effort by design: the call's outcome never depends on it.
    }
  }
}

/** A Node header value as `Headers.get` gives it (repeated values joined by ", "). */
function headerText(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return typeof value === "string" ? value : value.join(", ");
}
