import type { IncomingMessage } from 'node:http';
import type { ClusterContext } from './cluster';
import type { ApiClient } from './api-client';
import { parseSseFrames } from './sse';
import { mergeHistory, watchClusterChanges, type ClusterChange } from '../status/changes';
import type { NodeHealth } from '../status/change-text';
import type { ManagementAddress } from '../status/management-address';
import { readManagementAddress } from '../status/read';
import { listAdminEvents, listHealthEvents, listMoves } from '../store/history';
import { Membership } from '../store/membership';
import type { AdminEvent, HealthEvent, MoveEvent } from '../store/records';

/** Where `vipd events` and `vipd status -w` read the cluster: etcd on a node, or the API. */
export interface ChangeFeed {
  /** The moves and health verdicts recorded so far, oldest first. */
  history(): Promise<ClusterChange[]>;
  snapshot(): Promise<{ view: ManagementAddress; nodes: NodeHealth[] }>;
  /**
   * Calls `onChange` once per change until `stopped` aborts. `onResync` runs after a lost
   * connection came back: changes may have been missed, so read the snapshot again.
   */
  follow(onChange: (change: ClusterChange) => void, onResync: () => void, stopped: AbortSignal): Promise<void>;
}

/** The server sends a comment every 5 s; this long without a byte means the connection is dead. */
const STREAM_STALE_MS = 12_000;
const RECONNECT_FIRST_MS = 100;
const RECONNECT_MAX_MS = 2_000;

export class EtcdChangeFeed implements ChangeFeed {
  constructor(private readonly cluster: ClusterContext) {}

  async history(): Promise<ClusterChange[]> {
    const { store, keys } = this.cluster;
    const [moves, health, admin] = await Promise.all([listMoves(store, keys), listHealthEvents(store, keys), listAdminEvents(store, keys)]);
    return mergeHistory(moves, health, admin);
  }

  async snapshot(): Promise<{ view: ManagementAddress; nodes: NodeHealth[] }> {
    const { store, keys, config } = this.cluster;
    const membership = new Membership(store, keys);
    const [view, records, live] = await Promise.all([readManagementAddress(store, keys, config), membership.listNodes(), membership.liveNodeNames()]);
    const failing = new Map((view.status.nodes ?? []).map((node) => [node.name, node.failing.map((entry) => entry.check)]));
    return { view, nodes: records.map((record) => ({ name: record.name, healthy: live.has(record.name), failingChecks: failing.get(record.name) ?? [] })) };
  }

  async follow(onChange: (change: ClusterChange) => void, _onResync: () => void, stopped: AbortSignal): Promise<void> {
    // etcd's watches resume from their last revision after a reconnection: nothing is missed.
    const stop = await watchClusterChanges(this.cluster.store, this.cluster.keys, onChange);
    await untilAborted(stopped);
    await stop();
  }
}

/**
 * The API's event stream, reconnected whenever it breaks: through the VIP, a move takes the
 * connection down with the old holder, and the next connection reaches the new one. The
 * stream starts with the history; moves already delivered are not delivered again.
 */
export class ApiChangeFeed implements ChangeFeed {
  private readonly delivered = new Set<string>();

  constructor(private readonly client: ApiClient) {}

  async history(): Promise<ClusterChange[]> {
    // `health` is missing from a server older than the health history.
    const { events, health, admin } = await this.client.get<{ events: MoveEvent[]; health?: HealthEvent[]; admin?: AdminEvent[] }>('/v1/events');
    for (const event of events) this.delivered.add(moveKey(event));
    return mergeHistory(events, health ?? [], admin ?? []);
  }

  async snapshot(): Promise<{ view: ManagementAddress; nodes: NodeHealth[] }> {
    const [view, { nodes }] = await Promise.all([
      this.client.get<ManagementAddress>('/v1/management-address'),
      this.client.get<{ nodes: Array<NodeHealth & { checks?: Array<{ name: string; passing: boolean }> }> }>('/v1/nodes'),
    ]);
    return { view, nodes: nodes.map((node) => ({ name: node.name, healthy: node.healthy, failingChecks: (node.checks ?? []).filter((check) => !check.passing).map((check) => check.name) })) };
  }

  async follow(onChange: (change: ClusterChange) => void, onResync: () => void, stopped: AbortSignal): Promise<void> {
    let delay = RECONNECT_FIRST_MS;
    let connections = 0;
    while (!stopped.aborted) {
      try {
        const response = await this.client.openStream('/v1/events');
        if (connections++ > 0) onResync();
        delay = RECONNECT_FIRST_MS;
        await this.read(response, onChange, stopped);
      } catch {
        // Unreachable, reset or stale: try again, the VIP may be on its way to another node.
      }
      if (stopped.aborted) return;
      await sleep(delay, stopped);
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    }
  }

  private async read(response: IncomingMessage, onChange: (change: ClusterChange) => void, stopped: AbortSignal): Promise<void> {
    await new Promise<void>((resolve) => {
      let buffer = '';
      let lastData = Date.now();
      const done = (): void => {
        clearInterval(watchdog);
        stopped.removeEventListener('abort', done);
        response.destroy();
        resolve();
      };
      const watchdog = setInterval(() => {
        if (Date.now() - lastData > STREAM_STALE_MS) done();
      }, 1000);
      stopped.addEventListener('abort', done);
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        lastData = Date.now();
        const parsed = parseSseFrames(buffer + chunk);
        buffer = parsed.rest;
        for (const frame of parsed.frames) {
          const change = changeOf(frame.type, frame.data);
          if (!change) continue;
          if (change.type === 'move') {
            const key = moveKey(change.event);
            if (this.delivered.has(key)) continue;
            this.delivered.add(key);
          }
          onChange(change);
        }
      });
      response.on('end', done);
      response.on('error', done);
      response.on('close', done);
    });
  }
}

/** The same move read from the history and from the stream: its JSON may differ in key order. */
function moveKey(event: MoveEvent): string {
  return `${event.term}|${event.time}|${event.from}|${event.to}`;
}

function changeOf(type: string, data: string): ClusterChange | null {
  if (type !== 'move' && type !== 'node' && type !== 'lease' && type !== 'health' && type !== 'admin') return null;
  try {
    return { type, event: JSON.parse(data) } as ClusterChange;
  } catch {
    return null;
  }
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(finish, ms);
    function finish(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', finish);
      resolve();
    }
    signal.addEventListener('abort', finish, { once: true });
  });
}

/**
 * Follows the feed until Ctrl-C (SIGINT), SIGTERM or a closed stdout (`| head`), then
 * returns, so the command exits 0 after closing what it opened.
 */
export async function followUntilInterrupted(feed: ChangeFeed, onChange: (change: ClusterChange) => void, onResync: () => void): Promise<void> {
  const stopped = new AbortController();
  const stop = (): void => stopped.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.stdout.once('error', stop);
  try {
    await feed.follow(onChange, onResync, stopped.signal);
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
    process.stdout.removeListener('error', stop);
  }
}
