import { createContextKey } from "@connectrpc/connect";

/** Roles a token can carry. */
export type Role = "admin" | "service" | "user" | "device";

/** Who is calling: set by the auth interceptor, read by handlers and the request log. */
export interface Principal {
  /** The token subject: a user id, a service name or a device id. */
  readonly subject: string;
  readonly role: Role;
}

/**
 * The authenticated principal of a call, or undefined when the call carries none (no auth
 * configured yet, or an open procedure such as health).
 */
export const kPrincipal = createContextKey<Principal | undefined>(undefined, { description: "authenticated principal" });
