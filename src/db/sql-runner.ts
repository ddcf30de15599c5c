/**
 * Plain node-postgres access on the ORM's connection pool: the one place that reaches into the
 * knex client MikroORM pools connections with. The batch writer leases raw clients from it
 * ({@link ormConnectionSource}, for COPY and its flush transactions); the query, rollup and
 * retention code run statements through a {@link SqlPool}. These paths need what the ORM's query
 * layer does not offer: `$1` parameters bound as PostgreSQL arrays (`unnest($1::text[])`, one
 * parameter per column for a whole batch), explicit transactions with table locks, COPY, and
 * several statements in flight on separate connections. Borrowing connections from the ORM's pool
 * keeps one pool (and one size limit) per process.
 */
import type { EntityManager } from "@mikro-orm/postgresql";

/**
 * Runs one SQL statement with node-postgres `$1` parameters and returns its rows. The batch
 * writer's `FlushContext` is one, so the rollup code runs inside a flush unchanged.
 */
export interface SqlRunner {
  /** Runs `sql`; with `options.name`, as a prepared statement of that name (always the same text). */
  query<R = Record<string, unknown>>(sql: string, params?: unknown[], options?: { readonly name?: string }): Promise<R[]>;
}

/** A {@link SqlRunner} that can also run a function inside one transaction on one connection. */
export interface SqlPool extends SqlRunner {
  /** Runs `fn` between BEGIN and COMMIT (ROLLBACK when it throws) on one connection. */
  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T>;
}

/** A leased client on which statements run with `$1` parameters (the batch writer's flush). */
export interface SqlClient {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
}

/** The subset of a node-postgres `Client` a {@link SqlRunner} uses: plain and named (prepared) statements. */
export interface PgClient {
  query(sql: string | { name: string; text: string; values?: unknown[] }, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

/** Leases a raw node-postgres client from the ORM's pool (shared with everything else). */
export interface ConnectionSource {
  acquire(): Promise<SqlClient>;
  release(client: SqlClient): Promise<void> | void;
}

/** The subset of the knex client MikroORM pools connections with. */
interface KnexPoolClient {
  acquireConnection(): Promise<SqlClient>;
  releaseConnection(connection: SqlClient): Promise<void>;
}

/** The ORM's pool as a {@link ConnectionSource} (the batch writer's). */
export function ormConnectionSource(em: EntityManager): ConnectionSource {
  const knex = em.getKnex();
  return {
    acquire: () => knex.client.acquireConnection() as Promise<SqlClient>,
    release: (c) => knex.client.releaseConnection(c),
  };
}

/**
 * The ORM's pool as a {@link ConnectionSource} looked up at each lease, so a pool can be created
 * before the ORM has connected (and in tests that never reach the database).
 */
function lazyOrmConnectionSource(em: EntityManager): ConnectionSource {
  const client = () => em.getKnex().client as unknown as KnexPoolClient;
  return {
    acquire: () => client().acquireConnection(),
    release: (c) => client().releaseConnection(c),
  };
}

/** A {@link SqlPool} over the ORM's pool: each call borrows a connection and returns it. */
export function createSqlPool(em: EntityManager): SqlPool {
  return sqlPoolOver(lazyOrmConnectionSource(em));
}

/** A {@link SqlPool} over `source`: each call borrows a connection and returns it. */
export function sqlPoolOver(source: ConnectionSource): SqlPool {
  const withConnection = async <T>(fn: (c: SqlClient) => Promise<T>): Promise<T> => {
    const connection = await source.acquire();
    try {
      return await fn(connection);
    } finally {
      await source.release(connection);
    }
  };
  return {
    query: (sql, params, options) => withConnection((c) => runnerOn(c).query(sql, params, options)),
    transaction: (fn) =>
      withConnection(async (c) => {
        await c.query("begin");
        try {
          const result = await fn(runnerOn(c));
          await c.query("commit");
          return result;
        } catch (err) {
          // A broken connection cannot roll back; the original error is the one worth reporting.
          await c.query("rollback").catch(() => undefined);
          throw err;
        }
      }),
  };
}

/** A {@link SqlRunner} on one node-postgres client (named statements prepared on it). */
export function runnerOn(client: PgClient): SqlRunner {
  return {
    async query<R>(sql: string, params: unknown[] = [], options?: { readonly name?: string }) {
      return (await (options?.name ? client.query({ name: options.name, text: sql, values: params }) : client.query(sql, params))).rows as R[];
    },
  };
}

/** A count, sum or id that node-postgres returns as a string (int8, numeric) or a number. */
export function toNumber(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "string" || typeof value === "bigint") return Number(value);
  if (value === null || value === undefined) return 0;
  throw new TypeError(`expected a number, got ${typeof value}`);
}
