/**
 * The auth interceptor: finds the call's token, verifies it, applies the access matrix
 * (`access-policy.ts`) to the procedure and its request message(s), and puts the principal in
 * the context (`kPrincipal`) before any handler runs.
 */
import { Code, ConnectError, type Interceptor, type StreamRequest } from "@connectrpc/connect";
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
    const rule = accessRule(req.service.typeName, req.method.name);
    if (rule.allow === "open") return next(req);
    const credentials = readCredentials(req.header, req.url, options.corsOrigins);
    if (credentials.token === undefined) throw new ConnectError(credentials.problem, Code.Unauthenticated);
    const principal = await options.verify(credentials.token);
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
