/**
 * The holder's own fencing deadline.
 *
 * The window is the lease TTL (default profile) or the hold timeout (fast profile): in both,
 * no other node can take the VIP before `send time of the renewal + window`.
 *
 * etcd extends a lease when it *receives* a keepalive, which is after we sent it, so the
 * lease cannot expire before `sendTime + ttl` on etcd's clock. The holder must have dropped
 * the VIP before then, because from that moment another node may take it. We count from the
 * send time of the last acknowledged renewal on our monotonic clock, and subtract a margin
 * for clock-rate drift and the time it takes to remove the address.
 */
export class FencingDeadline {
  private deadlineMs = -Infinity;

  constructor(private readonly marginMs: number) {}

  /** Records an acknowledged renewal; returns the new deadline (monotonic ms). */
  acknowledge(sendTimeMs: number, windowMs: number): number {
    const candidate = sendTimeMs + windowMs - this.marginMs;
    // An ack for an older send can arrive after a newer one: never move the deadline back.
    if (candidate > this.deadlineMs) this.deadlineMs = candidate;
    return this.deadlineMs;
  }

  /** Forget every renewal: the lease is gone or being replaced. */
  reset(): void {
    this.deadlineMs = -Infinity;
  }

  get deadline(): number {
    return this.deadlineMs;
  }

  remainingMs(nowMs: number): number {
    return this.deadlineMs - nowMs;
  }

  isValid(nowMs: number): boolean {
    return nowMs < this.deadlineMs;
  }
}
