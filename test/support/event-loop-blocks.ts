/**
 * The longest the event loop went without a turn while some work ran: a `setImmediate` chain
 * notes the gap between turns. For tests that a large input is processed in slices.
 */
export async function longestBlockDuring<T>(work: () => Promise<T>): Promise<{ result: T; longestMs: number }> {
  let longest = 0;
  let last = performance.now();
  let ticking = true;
  const tick = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  try {
    const result = await work();
    return { result, longestMs: Math.max(longest, performance.now() - last) };
  } finally {
    ticking = false;
  }
}
