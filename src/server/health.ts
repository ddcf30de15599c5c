/**
 * gRPC health checking (`grpc.health.v1.Health`) for the Connect router.
 *
 * Semantics follow https://github.com/grpc/grpc/blob/master/doc/health-checking.md and the
 * reference implementation in grpc-go (`health/server.go`): "" is the whole server, Check on an
 * unknown name fails with NOT_FOUND, Watch on an unknown name reports SERVICE_UNKNOWN and stays
 * open, and a shutdown latch keeps late `setStatus` calls from flipping the server back to SERVING
 * while it drains.
 *
 * @module
 */
import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus } from "../../sdk/src/gen/grpc/health/v1/health_pb.js";

/** Serving status of a service, re-exported from the generated `grpc.health.v1` code. */
export { HealthCheckResponse_ServingStatus as ServingStatus };

/** Options for {@link createHealthService}. */
export interface HealthServiceOptions {
  /**
   * Statuses known at start, keyed by fully-qualified service name; "" is the whole server.
   * Defaults to `{ "": SERVING }`; pass `{ "": NOT_SERVING }` to report "not ready" until startup
   * (migrations, pool warm-up) has finished.
   */
  readonly statuses?: Readonly<Record<string, HealthCheckResponse_ServingStatus>>;
}

/** The health registry: serves `grpc.health.v1.Health` and holds the statuses it reports. */
export interface HealthService {
  /** The Connect implementation of `grpc.health.v1.Health`. */
  readonly impl: ServiceImpl<typeof Health>;
  /**
   * Registers `grpc.health.v1.Health` on a router. Bound, so it can be passed around as a route
   * function: `createRouterTransport(health.register)`.
   */
  readonly register: (router: ConnectRouter) => void;
  /**
   * Sets the status of `service` ("" = the whole server) and notifies its watchers. Ignored after
   * {@link HealthService.setAllNotServing}, so a component that recovers during drain cannot make
   * load balancers route new traffic to a server that is going away.
   */
  setStatus(service: string, status: HealthCheckResponse_ServingStatus): void;
  /** The current status of `service`, or `undefined` if it was never set. */
  getStatus(service: string): HealthCheckResponse_ServingStatus | undefined;
  /**
   * Marks every known service, and the server itself, NOT_SERVING and ignores later `setStatus`
   * calls. Call it first on shutdown, before the listener closes, so watchers learn it in time.
   */
  setAllNotServing(): void;
  /** Number of open Watch streams; for metrics, and to prove that cancelled watches are released. */
  readonly watcherCount: number;
}

type Listener = (status: HealthCheckResponse_ServingStatus) => void;

/**
 * Creates the health registry.
 *
 * @example
 * ```ts
 * const health = createHealthService({ statuses: { "": ServingStatus.NOT_SERVING } });
 * const routes = (router: ConnectRouter) => { health.register(router); ... };
 * // once ready:
 * health.setStatus("", ServingStatus.SERVING);
 * // on SIGTERM, before server.close():
 * health.setAllNotServing();
 * ```
 */
export function createHealthService(options: HealthServiceOptions = {}): HealthService {
  const statuses = new Map<string, HealthCheckResponse_ServingStatus>(
    Object.entries(options.statuses ?? { "": HealthCheckResponse_ServingStatus.SERVING }),
  );
  const listeners = new Map<string, Set<Listener>>();
  let watcherCount = 0;
  let shutDown = false;

  function update(service: string, status: HealthCheckResponse_ServingStatus): void {
    statuses.set(service, status);
    for (const listener of listeners.get(service) ?? []) {
      listener(status);
    }
  }

  function subscribe(service: string, listener: Listener): () => void {
    let set = listeners.get(service);
    if (set === undefined) {
      set = new Set();
      listeners.set(service, set);
    }
    set.add(listener);
    watcherCount++;
    return () => {
      watcherCount--;
      set.delete(listener);
      // Names come from clients, so drop empty sets or arbitrary names would grow the map forever.
      if (set.size === 0) {
        listeners.delete(service);
      }
    };
  }

  const impl: ServiceImpl<typeof Health> = {
    check(req) {
      const status = statuses.get(req.service);
      if (status === undefined) {
        throw new ConnectError(`unknown service ${quotedName(req.service)}`, Code.NotFound);
      }
      return { status };
    },
    list() {
      return {
        statuses: Object.fromEntries([...statuses].map(([name, status]) => [name, { status }])),
      };
    },
    async *watch(req, context) {
      const { signal } = context;
      // Only the latest unsent status is kept (as grpc-go does), so a slow watcher costs O(1)
      // memory however often the status flaps.
      let pending: HealthCheckResponse_ServingStatus | undefined;
      let wake: (() => void) | undefined;
      const unsubscribe = subscribe(req.service, (status) => {
        pending = status;
        wake?.();
      });
      const onAbort = (): void => wake?.();
      signal.addEventListener("abort", onAbort);
      try {
        let last = statuses.get(req.service) ?? HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN;
        yield { status: last };
        while (!signal.aborted) {
          if (pending === undefined) {
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
            continue;
          }
          const next: HealthCheckResponse_ServingStatus = pending;
          pending = undefined;
          if (next !== last) {
            last = next;
            yield { status: next };
          }
        }
      } finally {
        // Runs on every exit: normal end after abort, and generator.return() when Connect stops
        // consuming mid-yield because the client went away.
        signal.removeEventListener("abort", onAbort);
        unsubscribe();
      }
    },
  };

  return {
    impl,
    register: (router) => {
      router.service(Health, impl);
    },
    setStatus(service, status) {
      if (!shutDown) {
        update(service, status);
      }
    },
    getStatus: (service) => statuses.get(service),
    setAllNotServing() {
      shutDown = true;
      for (const service of new Set(["", ...statuses.keys()])) {
        update(service, HealthCheckResponse_ServingStatus.NOT_SERVING);
      }
    },
    get watcherCount() {
      return watcherCount;
    },
  };
}

/** Longest part of a caller's service name echoed in an error. */
const MAX_ECHOED_NAME = 100;

/**
 * A caller's service name for an error message: quoted, cut to {@link MAX_ECHOED_NAME}
 * characters and well-formed. The message travels as a gRPC trailer, percent-encoded (up to 9
 * bytes per character): an unbounded name overflowed the header block and the client got a reset
 * stream and no status; a lone surrogate made the encoding throw.
 */
export function quotedName(name: string): string {
  const cut = name.length > MAX_ECHOED_NAME ? `${name.slice(0, MAX_ECHOED_NAME)}…` : name;
  return JSON.stringify(cut.toWellFormed());
}
