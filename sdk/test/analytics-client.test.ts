/**
 * `createAnalyticsClient`'s local checks: a pre-encoded `LogEvents` batch over the message cap is
 * refused before anything is sent (the server would read up to the cap and refuse it, and Node's
 * HTTP/2 client loses part of its session memory budget when an upload is cut short).
 */
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createAnalyticsClient } from "../src/analytics-client.js";
import { AnalyticsService } from "../src/gen/analytics/v1/analytics_service_pb.js";
import { markBinaryTransport } from "../src/wire/binary-transport.js";

function harness(maxMessageBytes?: number) {
  let calls = 0;
  const transport = markBinaryTransport(
    createRouterTransport(({ service }) => {
      service(AnalyticsService, {
        logEvents: (req) => {
          calls++;
          return { results: req.events.map(() => ({ outcome: 1, id: "x" })), storedCount: req.events.length };
        },
      });
    }),
  );
  return { client: createAnalyticsClient(transport, maxMessageBytes === undefined ? {} : { maxMessageBytes }), calls: () => calls };
}

const big = (chars: number) => ({ error: { errorMessage: "x".repeat(chars) } });

describe("createAnalyticsClient: the message cap", () => {
  it("refuses a pre-encoded batch over the cap with ResourceExhausted, sending nothing", async () => {
    const h = harness(10_000);
    const err = await h.client.logEvents([big(4000), big(4000), big(4000)]).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((err as ConnectError).rawMessage).toMatch(/^LogEvents batch of 3 events is \d+ bytes, over the 10000-byte message cap: send fewer events per call$/);
    expect(h.calls()).toBe(0);
  });

  it("sends a batch under the cap, and defaults the cap to the server's default (4 MiB)", async () => {
    const h = harness(10_000);
    expect((await h.client.logEvents([big(4000), big(4000)])).storedCount).toBe(2);
    const d = harness();
    expect((await d.client.logEvents([big(1_000_000), big(1_000_000), big(1_000_000)])).storedCount).toBe(3);
    const err = await d.client.logEvents([big(1_500_000), big(1_500_000), big(1_500_000)]).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect(d.calls()).toBe(1);
  });
});
