import { afterEach, describe, expect, it, vi } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { ClientConnectionCounter, clientKeyOf, createThrottledCounter } from "../../src/server/connection-limits.js";
import { headersCheckIntervalMs } from "../../src/server/one-port-server.js";

describe("clientKeyOf", () => {
  it.each([
    ["203.0.113.7", "203.0.113.7"],
    ["::ffff:203.0.113.7", "203.0.113.7"],
    ["::FFFF:10.0.0.1", "10.0.0.1"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::9", "2001:db8:1:2::/64"],
    ["2001:0db8:0001:0002:ffff::1", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
    ["fe80::1%eth0", "fe80:0:0:0::/64"],
  ])("%s counts as %s", (address, key) => {
    expect(clientKeyOf(address)).toBe(key);
  });

  it("puts every address of one IPv6 /64 under one key, and a neighbouring /64 under another", () => {
    expect(clientKeyOf("2001:db8:a:b:1::1")).toBe(clientKeyOf("2001:db8:a:b:ffff:ffff:ffff:ffff"));
    expect(clientKeyOf("2001:db8:a:b::1")).not.toBe(clientKeyOf("2001:db8:a:c::1"));
  });

  it.each([[undefined], [""], ["not an address"], ["1.2.3"], ["::ffff:999.1.1.1"]])("has no key for %s", (address) => {
    expect(clientKeyOf(address)).toBeUndefined();
  });
});

describe("ClientConnectionCounter", () => {
  it("admits up to the cap per client, and again once one closes", () => {
    const c = new ClientConnectionCounter(2);
    expect([c.tryOpen("a"), c.tryOpen("a"), c.tryOpen("a")]).toEqual([true, true, false]);
    expect(c.tryOpen("b")).toBe(true);
    expect(c.count("a")).toBe(2);
    c.close("a");
    expect(c.tryOpen("a")).toBe(true);
    expect(c.tryOpen("a")).toBe(false);
  });

  it("forgets clients without open connections, so it holds only open ones", () => {
    const c = new ClientConnectionCounter(3);
    for (let i = 0; i < 1000; i++) {
      c.tryOpen(`10.0.${i >> 8}.${i & 255}`);
      c.close(`10.0.${i >> 8}.${i & 255}`);
    }
    c.tryOpen("x");
    expect(c.clients).toBe(1);
  });

  it("has no cap at 0", () => {
    const c = new ClientConnectionCounter(0);
    for (let i = 0; i < 10_000; i++) expect(c.tryOpen("balancer")).toBe(true);
    expect(c.count("balancer")).toBe(10_000);
  });
});

describe("createThrottledCounter", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("reports the first event at once and sums the rest into one report per interval", () => {
    vi.useFakeTimers();
    const reports: number[] = [];
    const c = createThrottledCounter(10_000, (n) => reports.push(n));
    c.note();
    expect(reports).toEqual([1]);
    for (let i = 0; i < 999; i++) c.note();
    expect(reports).toEqual([1]);
    vi.advanceTimersByTime(10_000);
    expect(reports).toEqual([1, 999]);
    c.note();
    c.note();
    vi.advanceTimersByTime(9_999);
    expect(reports).toEqual([1, 999]);
    vi.advanceTimersByTime(1);
    expect(reports).toEqual([1, 999, 2]);
    // A quiet interval ends the window: the next event is reported at once again.
    vi.advanceTimersByTime(10_000);
    c.note();
    expect(reports).toEqual([1, 999, 2, 1]);
  });

  it("reports what is pending when stopped, and nothing after", () => {
    vi.useFakeTimers();
    const reports: number[] = [];
    const c = createThrottledCounter(10_000, (n) => reports.push(n));
    c.note();
    c.note();
    c.note();
    c.stop();
    expect(reports).toEqual([1, 2]);
    vi.advanceTimersByTime(60_000);
    expect(reports).toEqual([1, 2]);
  });
});

describe("transport settings", () => {
  it("have their documented defaults", () => {
    expect(loadConfig({})).toMatchObject({
      headersTimeoutMs: 10_000,
      idleTimeoutMs: 120_000,
      maxConcurrentStreams: 128,
      maxConnections: 4096,
      maxConnectionsPerClient: 256,
    });
  });

  it("are read from the environment, 0 turning the per-client cap off", () => {
    expect(
      loadConfig({
        ANALYTICS_HEADERS_TIMEOUT_MS: "5000",
        ANALYTICS_IDLE_TIMEOUT_MS: "60000",
        ANALYTICS_MAX_CONCURRENT_STREAMS: "100",
        ANALYTICS_MAX_CONNECTIONS: "10000",
        ANALYTICS_MAX_CONNECTIONS_PER_CLIENT: "0",
      }),
    ).toMatchObject({ headersTimeoutMs: 5000, idleTimeoutMs: 60_000, maxConcurrentStreams: 100, maxConnections: 10_000, maxConnectionsPerClient: 0 });
  });

  it("refuse a stream cap under 100, which clients' first calls would run into", () => {
    expect(() => loadConfig({ ANALYTICS_MAX_CONCURRENT_STREAMS: "99" })).toThrowError(ConfigError);
    expect(() => loadConfig({ ANALYTICS_MAX_CONCURRENT_STREAMS: "99" })).toThrowError(/ANALYTICS_MAX_CONCURRENT_STREAMS="99" must be an integer from 100/);
  });

  it("check late headers a tenth of the deadline apart, between 10 ms and 1 s", () => {
    expect(headersCheckIntervalMs(10_000)).toBe(1000);
    expect(headersCheckIntervalMs(600_000)).toBe(1000);
    expect(headersCheckIntervalMs(300)).toBe(30);
    expect(headersCheckIntervalMs(50)).toBe(10);
  });
});
