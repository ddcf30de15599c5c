import { defineEntity, type InferEntity } from "@mikro-orm/core";

/**
 * `api_request_logs`: one row per RPC, written by the request-log interceptor (fire-and-forget).
 * The id is a database identity because nothing addresses a single request log from outside.
 */
export const ApiRequestLogEntity = defineEntity({
  name: "ApiRequestLog",
  tableName: "api_request_logs",
  properties: (p) => ({
    id: p.bigint("number").primary().autoincrement(),
    occurredAt: p.datetime().columnType("timestamptz"),
    endpoint: p.text(),
    protocol: p.text(),
    httpMethod: p.text(),
    /** The RPC code (0 = OK). */
    statusCode: p.smallint(),
    /** The RPC code mapped to the HTTP status a REST client would expect. */
    httpStatus: p.smallint(),
    responseTimeMs: p.double(),
    userId: p.text().nullable(),
    clientIp: p.text().nullable(),
    userAgent: p.text().nullable(),
    requestBytes: p.integer().default(0),
    responseBytes: p.integer().default(0),
    /** Messages received from the client (1 for unary calls). */
    requestMessages: p.integer().default(1),
    /** Messages sent to the client (1 for a successful unary call). */
    responseMessages: p.integer().default(1),
    errorMessage: p.text().nullable(),
  }),
  indexes: [
    { name: "api_request_logs_occurred_at_idx", properties: ["occurredAt"] },
    { name: "api_request_logs_endpoint_occurred_at_idx", properties: ["endpoint", "occurredAt"] },
  ],
});

/** A row of `api_request_logs`. */
export type ApiRequestLog = InferEntity<typeof ApiRequestLogEntity>;
