/**
 * The embedded PostgreSQL's session queue (`embedded-postgres.ts`): PGlite is a single backend
 * that pglite-socket cannot share safely between connections, so the public socket admits one
 * connection at a time and pipes it to the backend; the others wait, or are refused with a
 * PostgreSQL error their client can report (the module comment of `embedded-postgres.ts` says why
 * neither of pglite-socket's own modes will do).
 */
import type { Socket } from "node:net";

/**
 * Admits one client connection at a time, piping it to the backend; the others wait in order.
 * A waiting socket is not read from, so its startup message stays buffered until its turn.
 */
export class SessionGate {
  readonly #connectBackend: () => Socket;
  readonly #waitTimeoutMs: number;
  readonly #waiting: Array<{ client: Socket; timer: NodeJS.Timeout }> = [];
  readonly #sockets = new Set<Socket>();
  #active: Socket | undefined;
  #closed = false;

  constructor(connectBackend: () => Socket, waitTimeoutMs: number) {
    this.#connectBackend = connectBackend;
    this.#waitTimeoutMs = waitTimeoutMs;
  }

  /** Takes a new client connection: admitted at once when none is active, otherwise queued. */
  accept(client: Socket): void {
    if (this.#closed) {
      client.destroy();
      return;
    }
    this.#track(client);
    client.setNoDelay(true);
    if (this.#active === undefined) {
      this.#admit(client);
      return;
    }
    const timer = setTimeout(() => {
      this.#unqueue(client);
      client.end(
        errorResponse(
          "53300",
          `the embedded PostgreSQL serves one connection at a time and another one stayed open for ` +
            `${this.#waitTimeoutMs} ms: use a single connection (a pool of max 1) and close it when done`,
        ),
      );
    }, this.#waitTimeoutMs);
    this.#waiting.push({ client, timer });
    client.once("close", () => this.#unqueue(client));
  }

  /** Stops admitting and closes every connection. */
  close(): void {
    this.#closed = true;
    for (const { timer } of this.#waiting.splice(0)) clearTimeout(timer);
    for (const socket of this.#sockets) socket.destroy();
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    // Resets and broken pipes end the session through "close"; there is nobody to report them to.
    socket.on("error", () => {});
    socket.once("close", () => this.#sockets.delete(socket));
  }

  #unqueue(client: Socket): void {
    const i = this.#waiting.findIndex((w) => w.client === client);
    if (i === -1) return;
    const [entry] = this.#waiting.splice(i, 1);
    if (entry) clearTimeout(entry.timer);
  }

  #admit(client: Socket): void {
    this.#active = client;
    const backend = this.#connectBackend();
    this.#track(backend);
    backend.setNoDelay(true);
    let open = 2;
    const closed = (): void => {
      open -= 1;
      if (open > 0) return;
      this.#active = undefined;
      this.#admitNext();
    };
    let reached = false;
    backend.once("connect", () => {
      reached = true;
    });
    backend.once("error", (err) => {
      if (!reached && client.writable) {
        client.end(errorResponse("08006", `the embedded PostgreSQL is not reachable: ${err.message}`));
      }
    });
    client.once("close", () => {
      backend.destroy();
      closed();
    });
    backend.once("close", () => {
      if (!client.writableEnded) client.end();
      closed();
    });
    client.pipe(backend);
    backend.pipe(client);
  }

  #admitNext(): void {
    if (this.#closed) return;
    for (let next = this.#waiting.shift(); next !== undefined; next = this.#waiting.shift()) {
      clearTimeout(next.timer);
      if (next.client.destroyed) continue;
      this.#admit(next.client);
      return;
    }
  }
}

/** A PostgreSQL ErrorResponse message, so clients report the reason instead of a dropped connection. */
function errorResponse(sqlState: string, message: string): Buffer {
  const fields = Buffer.concat([
    field("S", "FATAL"),
    field("V", "FATAL"),
    field("C", sqlState),
    field("M", message),
    Buffer.from([0]),
  ]);
  const header = Buffer.alloc(5);
  header.write("E", 0, "latin1");
  header.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([header, fields]);
}

function field(code: string, value: string): Buffer {
  return Buffer.concat([Buffer.from(code, "latin1"), Buffer.from(value, "utf8"), Buffer.from([0])]);
}
