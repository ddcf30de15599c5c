/**
 * The `log-events` benchmark's events, made the same way in the client process (which sends them)
 * and in the benchmark process (which COPYs the same rows for the baseline), so no event crosses
 * between the processes: parsing 100k events in the process that hosts the servers left garbage
 * that the next measured run paid for.
 */

/** One device state change, as the SDK sends it. */
export interface BenchEvent {
  readonly kind: {
    readonly case: "deviceStateChange";
    readonly value: {
      deviceId: string;
      previousState: string;
      newState: string;
      changedBy: string;
      reason: string;
      extraData: { attempt: number; region: string };
      eventId: string;
    };
  };
}

/**
 * Event `n` of a run: its event id is a UUID (version-4 form) made of the run's `seed` and `n`,
 * unique per run (each run uses a fresh seed, so a run never replays another's events).
 */
export function benchEvent(seed: number, n: number): BenchEvent {
  const hex = (v: number, digits: number) => (v >>> 0).toString(16).padStart(digits, "0").slice(-digits);
  const eventId = `${hex(seed, 8)}-${hex(n >>> 16, 4)}-4${hex(n, 3)}-8${hex(seed >>> 20, 3)}-${hex(n, 8)}${hex(seed, 4)}`;
  return {
    kind: {
      case: "deviceStateChange",
      value: {
        deviceId: `device-${n % 5000}`,
        previousState: "online",
        newState: n % 2 ? "offline" : "online",
        changedBy: "scheduler",
        reason: "heartbeat missed",
        extraData: { attempt: n % 3, region: "eu-west" },
        eventId,
      },
    },
  };
}

/** The run's events in batches of `size`. */
export function benchBatches(seed: number, total: number, size: number): BenchEvent[][] {
  return Array.from({ length: Math.ceil(total / size) }, (_, b) =>
    Array.from({ length: Math.min(size, total - b * size) }, (_, i) => benchEvent(seed, b * size + i)),
  );
}
