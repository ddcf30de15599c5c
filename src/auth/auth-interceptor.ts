/**
 * The auth interceptor: finds the call's token, verifies it, applies the access matrix
 * (`access-policy.ts`) to the procedure and its request message(s), and puts the principal in
 * the context (`kPrincipal`) before any handler runs. Behind the server's auth gate
 * (`src/server/auth-gate.ts`) it takes the gate's verdict ({@link kAuthVerdict}) instead of
 * verifying the token a second time; in-process transports have no gate and verify here.
 */
import { Code, ConnectError, createContextKey, type Interceptor, type StreamRequest } from "@connectrpc/connect";
import { accessRule, checkRole, type AccessRule } from "./access-policy.js";
import { readCredentials } from "./credentials.js";
import { kPrincipal, type Principal } from "./principal.js";
import type { TokenVerifier } from "./token-verifier.js";

/** Options for {@link createAuthInterceptor}. */
export interface AuthInterceptorOptions {
  /** Verifies a token (see `createTokenVerifierFromConfig`). */
  readonly verify: TokenVerifier;
  /** Origins whose browser requests may authenticate with the cookie (`ANALYTICS_CORS_ORIGINS`). */
  readonly corsOrigins: readonly string[];
}

/**
 * What the auth gate concluded about a call's credentials before Connect read its body: the
 * principal its token names, or why the call is refused (what verification threw, or the
 * missing-credentials error). Set only by server code from the Node request (never from
 * anything a client sends), so a client cannot forge one.
 */
export type AuthVerdict = { readonly token: string; readonly principal: Principal } | { readonly refused: unknown };

/** The gate's verdict on the current call; undefined without a gate (in-process transports). */
export const kAuthVerdict = createContextKey<AuthVerdict | undefined>(undefined, { description: "auth gate verdict" });

const denied = (reason: string) => new ConnectError(`permission denied: ${reason}`, Code.PermissionDenied);

/** Checks every message of a client stream as it is read; a bad one fails the call. */
async function* checkEach<T>(messages: AsyncIterable<T>, principal: Principal, check: NonNullable<AccessRule["check"]>): AsyncIterable<T> {
  for await (const message of messages) {
    const denial = check(principal, message);
    if (denial) throw denied(`${denial.field}: ${denial.reason}`);
    yield message;
  }
}

/** Creates the interceptor; put it before (outside of) anything that needs the principal. */
export function createAuthInterceptor(options: AuthInterceptorOptions): Interceptor {
  return (next) => async (req) => {
    const verdict = req.contextValues.get(kAuthVerdict);
    // A refused call carries a stand-in body instead of the client's: it never reaches a handler.
    if (verdict !== undefined && "refused" in verdict) throw verdict.refused;
    const rule = accessRule(req.service.typeName, req.method.name);
    if (rule.allow === "open") return next(req);
    const credentials = readCredentials(req.header, req.url, options.corsOrigins);
    if (credentials.token === undefined) throw new ConnectError(credentials.problem, Code.Unauthenticated);
    // The gate read the same headers; comparing the token keeps the verdict bound to them.
    const principal = verdict?.token === credentials.token ? verdict.principal : await options.verify(credentials.token);
    const procedure = `${req.service.typeName}/${req.method.name}`;
    const roleDenial = checkRole(rule, principal, procedure);
    if (roleDenial) throw denied(roleDenial.reason);
    req.contextValues.set(kPrincipal, principal);
    if (!rule.check) return next(req);
    if (!req.stream) {
      const denial = rule.check(principal, req.message);
      if (denial) throw denied(`${denial.field}: ${denial.reason}`);
      return next(req);
    }
    const checkedReq: StreamRequest = { ...req, message: checkEach(req.message, principal, rule.check) };
    return next(checkedReq);
  };
}
