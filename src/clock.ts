/** Monotonic milliseconds: immune to wall-clock steps (NTP, an admin's `date -s`). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}
