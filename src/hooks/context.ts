/**
 * What a hook is told about a transition: the event it maps to, and the VIPD_* environment
 * a command gets (a webhook gets the same context as its JSON body).
 */
import type { HookEvent } from '../config/config';
import type { TransitionCause } from '../store/records';

/** Causes where the node lost the VIP without choosing to. */
const FAULT_CAUSES: ReadonlySet<TransitionCause> = new Set(['fenced', 'lease_lost', 'dhcp_lost']);

export function hookEventOf(cause: TransitionCause): HookEvent {
  if (cause === 'acquired') return 'acquire';
  return FAULT_CAUSES.has(cause) ? 'fault' : 'release';
}

/** Everything a hook is told about one transition. */
export interface HookContext {
  event: HookEvent;
  cause: TransitionCause;
  reason: string;
  vip: string;
  node: string;
  nodeIP: string;
  mac: string;
  term: number | null;
  previousHolder: string | null;
  cluster: string;
  time: string;
}

/** The environment a hook command gets on top of the agent's own. */
export function hookEnvironment(context: HookContext): Record<string, string> {
  return {
    VIPD_EVENT: context.event,
    VIPD_CAUSE: context.cause,
    VIPD_REASON: context.reason,
    VIPD_VIP: context.vip,
    VIPD_NODE: context.node,
    VIPD_NODE_IP: context.nodeIP,
    VIPD_MAC: context.mac,
    VIPD_TERM: context.term === null ? '' : String(context.term),
    VIPD_PREVIOUS_HOLDER: context.previousHolder ?? '',
    VIPD_CLUSTER: context.cluster,
    VIPD_TIME: context.time,
  };
}
