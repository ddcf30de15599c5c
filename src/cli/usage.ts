/** What the CLI commands share: where they write, and how they report bad arguments. */

/** Where a command writes its output (stdout or stderr). */
export type Write = (text: string) => void;

/** Bad command-line arguments (the CLI prints it with the usage and exits 2). */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Runs `fn` (argument parsing), turning its errors into {@link UsageError}. */
export function usage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
