import { createContextKey } from "@connectrpc/connect";

/** Roles a token can carry, most privileged first. */
export const ROLES = ["admin", "service", "user", "device"] as const;
/** One of {@link ROLES}. */
export type Role = (typeof ROLES)[number];

/** Who is calling: set by the auth interceptor, read by handlers and the request log. */
export interface Principal {
  /** The token subject: a user id, a service name or a device id. */
  readonly subject: string;
  readonly role: Role;
  /**
   * When the token stops being valid (its `exp`, epoch ms). Calls that outlive their start (the
   * metrics stream) end at this time; undefined when no token was checked (in-process tests).
   */
  readonly expiresAtMs?: number | undefined;
}

/**
 * The authenticated principal of a call, set by the auth interceptor before any handler runs;
 * undefined only for open procedures (health, reflection) and in-process tests without auth.
 */
export const kPrincipal = createContextKey<Principal | undefined>(undefined, { description: "authenticated principal" });
