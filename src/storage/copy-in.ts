/**
 * `COPY ... FROM STDIN` of one ready buffer, sent in one go: the Query message, the data and
 * CopyDone written back to back, without waiting for PostgreSQL's CopyInResponse in between.
 *
 * Why not pg-copy-streams' stream (which the writer used before): it holds the data until the
 * CopyInResponse arrives, and in this service that answer is read only once the event loop is
 * free, often after a 500-event request has been decoded, while the database backend
 * waits idle for its data. Sending the data behind the query is safe by the protocol: in copy-in
 * mode the backend reads it, and if the statement fails before copy-in starts, "any subsequent
 * CopyData, CopyDone, or CopyFail messages issued by the frontend will simply be dropped"
 * (PostgreSQL protocol, "COPY Operations"); the error is then reported as for any statement.
 *
 * It is a node-postgres "submittable" (the interface pg-copy-streams and pg-cursor implement):
 * `client.query(submittable)` queues it behind the connection's other statements. The socket's
 * back-pressure is not waited for: the batch is already in memory whole (at most `batchRows`
 * rows), and the socket stream keeps what the kernel does not take yet.
 */
import type pg from "pg";

/** PostgreSQL frontend message types used here. */
const COPY_DATA = 0x64; // 'd'
const COPY_DONE = Buffer.from([0x63, 0, 0, 0, 4]); // 'c', length 4

/** One COPY FROM STDIN of `data`, for `client.query()`; `done` settles when PostgreSQL has answered. */
class PipelinedCopyIn implements pg.Submittable {
  /** node-postgres reads `text` for its logs and timeouts. */
  readonly text: string;
  readonly done: Promise<number>;
  readonly #data: Buffer;
  #rows = 0;
  #resolve!: (rows: number) => void;
  #reject!: (err: Error) => void;

  constructor(statement: string, data: Buffer) {
    this.text = statement;
    this.#data = data;
    this.done = new Promise<number>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /** Called by node-postgres when the connection is free: sends everything at once. */
  submit(connection: pg.Connection): void {
    connection.query(this.text);
    const header = Buffer.allocUnsafe(5);
    header[0] = COPY_DATA;
    header.writeUInt32BE(this.#data.length + 4, 1);
    connection.stream.write(header);
    connection.stream.write(this.#data);
    connection.stream.write(COPY_DONE);
  }

  /** The data is already on its way. */
  handleCopyInResponse(): void {}

  handleCommandComplete(msg: { text?: string }): void {
    const match = /^COPY (\d+)/.exec(msg.text ?? "");
    if (match) this.#rows = Number(match[1]);
  }

  /** After CommandComplete: the statement (its implicit transaction, if any) is done. */
  handleReadyForQuery(): void {
    this.#resolve(this.#rows);
  }

  /** An ErrorResponse (node-postgres then forgets this query; ReadyForQuery follows for the connection). */
  handleError(err: Error): void {
    this.#reject(err);
  }

  /** node-postgres replaces this with its timeout hook when `query_timeout` is set. */
  callback(): void {}
}

/**
 * Runs `statement` (a `COPY ... FROM STDIN`) with `data` as its whole input on `client`; resolves
 * with the rows copied once PostgreSQL has answered, rejects with its error.
 */
export function copyFromBuffer(client: pg.Client, statement: string, data: Buffer): Promise<number> {
  const query = new PipelinedCopyIn(statement, data);
  client.query(query);
  return query.done;
}
