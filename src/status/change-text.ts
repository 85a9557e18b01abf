import type { ClusterChange } from './changes';
import type { ManagementAddress } from './management-address';

/** Node health as `vipd status -w` shows it beside the holder. */
export interface NodeHealth {
  name: string;
  /** Its agent runs. */
  healthy: boolean;
  /** Its health checks that fail (issue 13), when known. */
  failingChecks?: string[];
}

/** One line of `vipd events`: time, kind, what changed. */
export function formatChangeLine(change: ClusterChange): string {
  switch (change.type) {
    case 'move': {
      const { from, to, term, reason, time } = change.event;
      const what = from && to ? `${from} -> ${to}` : to ? `${to} took the VIP` : `${from ?? 'the holder'} released the VIP`;
      return `${time}  move   ${what}${term !== null ? ` (term ${term})` : ''}: ${reason}`;
    }
    case 'node':
      return `${change.event.time}  node   ${change.event.node} ${change.event.healthy ? 'is running (healthy)' : 'stopped (unhealthy)'}`;
    case 'lease': {
      const lease = change.event;
      const what = lease.state === 'bound' ? `${lease.leasedIP} bound by ${lease.holder} for ${lease.leaseSeconds}s, expires ${lease.expiresAt}` : `${lease.state} on ${lease.holder}: ${lease.reason ?? 'waiting for a lease'}`;
      return `${lease.time}  lease  ${what}`;
    }
    case 'admin':
      return `${change.event.time}  admin  ${change.event.node} ${change.event.message}`;
    case 'health': {
      const { node, healthy, failing, time } = change.event;
      const checks = failing.map((entry) => `check ${entry.check} failing${entry.detail ? ` (${entry.detail})` : ''}`).join(', ');
      return `${time}  health ${node} ${healthy ? 'is healthy: every check passes' : `is unhealthy: ${checks || 'its checks have not passed yet'}`}`;
    }
  }
}

/** JSON lines: the change's record with its type first, for jq. */
export function changeAsJson(change: ClusterChange): string {
  return JSON.stringify({ type: change.type, ...change.event });
}

/** One line of `vipd status -w`: who holds the VIP, how many nodes run, the DHCP lease. */
export function formatStatusLine(view: ManagementAddress, nodes: NodeHealth[], time: string): string {
  const status = view.status;
  const holder = status.held ? `held by ${status.holder} (${status.holderIP}, ${status.hwaddr ?? 'MAC unknown'}), term ${status.term}` : 'no node holds the VIP';
  const down = nodes.filter((node) => !node.healthy).map((node) => node.name);
  const health = `${nodes.length - down.length} of ${nodes.length} nodes healthy${down.length ? ` (down: ${down.join(', ')})` : ''}`;
  const failing = nodes.filter((node) => node.failingChecks?.length).map((node) => `${node.name} (${node.failingChecks!.join(', ')})`);
  const checks = failing.length ? `; checks failing on ${failing.join(', ')}` : '';
  const lease = status.dhcp ? `; DHCP ${status.dhcp.state}${status.dhcp.leasedIP ? ` ${status.dhcp.leasedIP}` : ''}` : '';
  const note = status.held && status.message !== `held by ${status.holder}` ? `; ${status.message}` : '';
  return `${time}  ${holder}; ${health}${checks}${lease}${note}`;
}
