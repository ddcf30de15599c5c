/**
 * A TCP proxy in front of a database, so a test can take "the database" away from one server
 * (cut every connection and refuse new ones) and bring it back, without stopping a PostgreSQL
 * cluster that other tests share.
 */
import net from "node:net";
import { join } from "node:path";

/** A running proxy. */
export interface TcpProxy {
  readonly port: number;
  /** Rewrites `url` (postgres://...) to go through the proxy. */
  via(url: string): string;
  /** Destroys every open connection and refuses new ones until {@link restore}. */
  cut(): void;
  /**
   * Stops forwarding bytes without closing anything (a network partition: the database just
   * stops answering), for open and new connections, until {@link restore}, which then resets them.
   */
  stall(): void;
  restore(): void;
  close(): Promise<void>;
}

/**
 * Starts a proxy on 127.0.0.1 (random port) forwarding to `target`: a TCP address, or, when `host`
 * is a folder path (as the embedded database's URL names its Unix socket), the PostgreSQL socket
 * `.s.PGSQL.<port>` in it.
 */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const connectUpstream = target.host.startsWith("/")
    ? () => net.connect(join(target.host, `.s.PGSQL.${target.port}`))
    : () => net.connect(target.port, target.host);
  const open = new Set<net.Socket>();
  let down = false;
  let stalled = false;
  const server = net.createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    if (stalled) {
      // Accept, then never answer.
      open.add(client);
      client.on("error", () => undefined);
      client.pause();
      return;
    }
    const upstream = connectUpstream();
    open.add(client);
    open.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.on("data", (chunk) => {
      if (!stalled) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (!stalled) client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    via(url) {
      const u = new URL(url);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    cut() {
      down = true;
      for (const s of open) s.destroy();
      open.clear();
    },
    stall() {
      stalled = true;
    },
    restore() {
      if (stalled) {
        stalled = false;
        for (const s of open) s.destroy();
        open.clear();
      }
      down = false;
    },
    close() {
      down = true;
      for (const s of open) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
