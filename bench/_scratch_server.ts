import http2 from "node:http2";
const win = Number(process.env.SCRATCH_WINDOW ?? 0);
if (win > 0) {
  const orig = http2.createServer;
  (http2 as { createServer: unknown }).createServer = ((opts: http2.ServerOptions, handler: never) => {
    const server = orig({ ...opts, settings: { ...opts.settings, initialWindowSize: win } }, handler);
    server.on("session", (s) => s.setLocalWindowSize(win * 4));
    return server;
  }) as never;
}
await import("../src/main.ts");
