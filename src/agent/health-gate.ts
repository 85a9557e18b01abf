/**
 * What this node's health means for the VIP (issue 13). The rules, in one place:
 *
 * - A healthy node is eligible.
 * - An unhealthy node that does not hold the VIP is not eligible while some other running
 *   node is healthy. When no running node is healthy it stays eligible: a vacant VIP is
 *   better taken by an unhealthy node than by none (the cluster may need the VIP to become
 *   healthy at all, as a control plane bootstrapping through it does).
 * - An unhealthy holder stays eligible: it never drops the VIP for health. When a healthy
 *   running node exists it asks for a planned move to it; otherwise it stays put. A holder
 *   leaves only for a node whose checks pass, so the VIP never bounces between unhealthy
 *   nodes, and a node whose health comes back does not take the VIP back by itself.
 * - A holder leaves only for a real failure (a check failed `fall` times in a row), not
 *   while its checks are still rising after start, so a cluster starting up keeps its VIP.
 */

export interface HealthFacts {
  /** Why this node is unhealthy ("check api failing: HTTP 503"), or null when healthy. */
  unhealthy: string | null;
  /** A check has failed `fall` times in a row (not merely still rising since start): only then does a holder leave. */
  failed: boolean;
  /** This node owns the leader key (holding the VIP or handing it off). */
  holdsKey: boolean;
  /** Running nodes other than this one whose checks all pass, in order of preference. */
  healthyPeers: string[];
  /**
   * Of those, the ones whose checks show no failure at all right now, not even below `fall`:
   * the only nodes a holder leaves for. When every service dies at once, the first holder to
   * reach `fall` would otherwise pick a peer that is only a probe or two from failing too, and
   * the VIP would bounce. Its peers' first failures are published at once, at least one
   * interval before the holder's `fall`-th (same check timing), so they are out by then.
   */
  moveTargets: string[];
}

export interface HealthDecision {
  eligible: boolean;
  /** For the log line when eligibility changes. */
  reason: string;
  /** The holder should ask for a planned move to this node. */
  moveTo: string | null;
  /** The holder is unhealthy and has nowhere to go: it keeps the VIP. */
  heldWhileUnhealthy: boolean;
}

export function decideByHealth(facts: HealthFacts): HealthDecision {
  const { unhealthy, failed, holdsKey, healthyPeers, moveTargets } = facts;
  if (unhealthy === null) return { eligible: true, reason: 'management interface is up and health checks pass', moveTo: null, heldWhileUnhealthy: false };
  if (holdsKey) {
    const moveTo = failed ? (moveTargets[0] ?? null) : null;
    return { eligible: true, reason: `unhealthy holder (${unhealthy})`, moveTo, heldWhileUnhealthy: moveTo === null };
  }
  if (healthyPeers.length) return { eligible: false, reason: `unhealthy: ${unhealthy}`, moveTo: null, heldWhileUnhealthy: false };
  return { eligible: true, reason: `unhealthy, but no running node is healthy (${unhealthy})`, moveTo: null, heldWhileUnhealthy: false };
}
