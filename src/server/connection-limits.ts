/**
 * Decisions behind the one-port server's connection limits, kept free of sockets so they are
 * tested alone: which client a connection belongs to, whether one more connection from it is
 * admitted, and how a flood of refusals is logged without flooding the log.
 */
import { isIPv4, isIPv6 } from "node:net";

/**
 * The client a connection counts against: the IPv4 address (an IPv4-mapped IPv6 address counts
 * as its IPv4 address, so a dual-stack listener does not give one host two budgets), or the /64
 * of an IPv6 address (`2001:db8:1:2::/64`). One IPv6 host is normally handed a whole /64 and can
 * pick any address in it for each connection: counting single IPv6 addresses would cap nothing.
 *
 * @returns the key, or `undefined` when the address is missing or unparseable (a socket already
 *   closed by its peer has no address; such a connection is not worth admitting).
 */
export function clientKeyOf(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  let text = address;
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(text);
  if (mapped) text = mapped[1]!;
  if (isIPv4(text)) return text;
  if (!isIPv6(text)) return undefined;
  const groups = ipv6Groups(text.toLowerCase());
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (a dotted IPv4 tail becomes two groups). */
function ipv6Groups(address: string): number[] {
  let text = address;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const [head = "", tail] = text.split("::") as [string, string | undefined];
  const left = parse(head);
  if (tail === undefined) return left;
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/**
 * Open connections per client, with a cap. `0` means no cap (a server behind a load balancer
 * sees every connection come from the balancer's address).
 */
export class ClientConnectionCounter {
  private readonly open = new Map<string, number>();

  constructor(private readonly maxPerClient: number) {}

  /** Counts one more connection for `key`, or returns false (and counts nothing) when at the cap. */
  tryOpen(key: string): boolean {
    const n = this.open.get(key) ?? 0;
    if (this.maxPerClient > 0 && n >= this.maxPerClient) return false;
    this.open.set(key, n + 1);
    return true;
  }

  /** Forgets one connection of `key` (one that {@link tryOpen} admitted). */
  close(key: string): void {
    const n = this.open.get(key) ?? 0;
    // Deleted at zero so the map holds only clients with open connections: its size is bounded
    // by the overall connection cap, however many addresses come and go.
    if (n <= 1) this.open.delete(key);
    else this.open.set(key, n - 1);
  }

  /** Open connections of `key`. */
  count(key: string): number {
    return this.open.get(key) ?? 0;
  }

  /** Clients with at least one open connection. */
  get clients(): number {
    return this.open.size;
  }
}

/** What {@link createThrottledCounter} returns. */
export interface ThrottledCounter {
  /** Counts one event; reports it now, or with the next report if one was made within the interval. */
  note(): void;
  /** Reports what is still pending and stops the timer. */
  stop(): void;
}

/**
 * Counts events (refused connections) and reports them at most once per `intervalMs`: the first
 * at once, the rest summed into one report at the end of each interval that had any. A flood of
 * a million refusals so costs one log line per interval, and no refusal goes uncounted.
 */
export function createThrottledCounter(
  intervalMs: number,
  report: (count: number) => void,
): ThrottledCounter {
  let pending = 0;
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    timer = undefined;
    if (pending === 0) return;
    const n = pending;
    pending = 0;
    report(n);
    arm();
  };
  const arm = () => {
    timer = setTimeout(tick, intervalMs);
    // A pending report must not keep the process alive at exit.
    timer.unref();
  };
  return {
    note() {
      if (timer === undefined) {
        report(1);
        arm();
      } else {
        pending++;
      }
    },
    stop() {
      clearTimeout(timer);
      timer = undefined;
      if (pending > 0) report(pending);
      pending = 0;
    },
  };
}
