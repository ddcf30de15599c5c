import { ConnectError } from "@connectrpc/connect";

/** Awaits a call that must fail and returns its error as a ConnectError (fails if it succeeds). */
export async function rpcError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail, but it succeeded");
}
