/**
 * The browser transport: Connect over `fetch` (JSON), with the `access_token` cookie
 * (`credentials: "include"`) or a bearer token.
 *
 * @module
 */
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { markBinaryTransport } from "../wire/binary-transport.js";
import { createBearerTokenInterceptor, type TokenSource } from "../bearer-token.js";
import { createRetryInterceptor, type RetryOptions } from "../retry.js";

/** Options of {@link createWebTransport}. */
export interface WebTransportOptions {
  /** The service's URL, e.g. `https://analytics.example.com` (its origin must be allowed by CORS). */
  readonly baseUrl: string;
  /** A bearer token; without `token`/`getToken` the browser's `access_token` cookie is used. */
  readonly token?: string;
  /** Returns the current bearer token; called before every attempt. */
  readonly getToken?: () => string | Promise<string>;
  /**
   * Whether the browser sends cookies (default `"include"`, needed for the `access_token` cookie
   * on another origin; the server must list the page's origin in `ANALYTICS_CORS_ORIGINS`).
   */
  readonly credentials?: RequestCredentials;
  /** Deadline of each call in ms, retries included (default 15000; 0 for none). */
  readonly timeoutMs?: number;
  /** Retries of unary calls, as in `./node` (default `{ maxAttempts: 3 }`; `false` disables them). */
  readonly retry?: RetryOptions | false;
  /** Send binary protobuf instead of JSON (default false: JSON is readable in devtools). */
  readonly useBinaryFormat?: boolean;
  /** More interceptors, run once per attempt. */
  readonly interceptors?: readonly Interceptor[];
  /** A `fetch` to use instead of `globalThis.fetch`. */
  readonly fetch?: typeof globalThis.fetch;
}

/**
 * Creates a Connect-Web transport.
 *
 * ```ts
 * import { createAnalyticsClient } from "@fleet/analytics-sdk";
 * import { createWebTransport } from "@fleet/analytics-sdk/web";
 *
 * // Cookie auth: the app's login set `access_token` (HttpOnly) for the analytics host.
 * const analytics = createAnalyticsClient(createWebTransport({ baseUrl: "https://analytics.example.com" }));
 * ```
 *
 * @throws Error when both `token` and `getToken` are given.
 */
export function createWebTransport(options: WebTransportOptions): Transport {
  if (options.token !== undefined && options.getToken !== undefined) throw new Error("give token or getToken, not both");
  const interceptors: Interceptor[] = [];
  interceptors.push(createRetryInterceptor(options.retry === false ? { maxAttempts: 1 } : { maxAttempts: 3, ...options.retry }));
  const source: TokenSource | undefined = options.token ?? options.getToken;
  if (source !== undefined) interceptors.push(createBearerTokenInterceptor(source));
  interceptors.push(...(options.interceptors ?? []));
  const credentials = options.credentials ?? "include";
  const baseFetch = options.fetch;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const transport = createConnectTransport({
    baseUrl: options.baseUrl,
    useBinaryFormat: options.useBinaryFormat ?? false,
    interceptors,
    defaultTimeoutMs: timeoutMs > 0 ? timeoutMs : undefined,
    // Looked up per call, so a page (or test) replacing window.fetch later is honoured.
    fetch: (input, init) => (baseFetch ?? globalThis.fetch)(input, { ...init, credentials }),
  });
  return options.useBinaryFormat === true ? markBinaryTransport(transport) : transport;
}
