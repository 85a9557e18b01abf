/**
 * Every node's health as published in the store: this node's publisher, and the view the
 * agent asks "is there a healthy node to move the VIP to?" and status reads.
 */
import type { Watcher } from 'etcd3';
import { storedFromWatch, type EtcdStore } from '../store/etcd-store';
import type { ClusterKeys } from '../store/keys';
import { recordHealthEvent } from '../store/history';
import { healthEventOf, parseHealthRecord, type NodeHealthRecord } from '../store/records';

/** Every node's published health, by node name. A damaged record is left out (its node counts as unknown). */
export async function readClusterHealth(store: EtcdStore, keys: ClusterKeys): Promise<Map<string, NodeHealthRecord>> {
  const stored = await store.getPrefix(keys.healthPrefix);
  const result = new Map<string, NodeHealthRecord>();
  for (const entry of stored) {
    const record = parseHealthRecord(entry.value);
    if (record) result.set(entry.key.slice(keys.healthPrefix.length), record);
  }
  return result;
}

/** Healthy, and no check has failed since its last success: not about to turn unhealthy. */
function steady(record: NodeHealthRecord): boolean {
  return record.healthy && record.checks.every((check) => check.consecutiveFailures === 0);
}

async function readHealth(store: EtcdStore, keys: ClusterKeys, node: string): Promise<NodeHealthRecord | null> {
  const stored = await store.get(keys.health(node));
  return stored ? parseHealthRecord(stored.value) : null;
}

function unhealthyReason(record: NodeHealthRecord | null, to: string): string | null {
  if (!record || record.healthy) return null;
  return `node "${to}" is unhealthy: ${record.failing.length ? `check ${record.failing.join(', ')} failing` : 'its checks have not passed yet'}`;
}

/**
 * Why `to` may not receive the VIP by health, or null if it may. A node that published no
 * health (an agent from before health checks) is not refused: only a known failure is.
 */
export async function unhealthyTargetReason(store: EtcdStore, keys: ClusterKeys, to: string): Promise<string | null> {
  return unhealthyReason(await readHealth(store, keys, to), to);
}

/**
 * Why `to` may not receive the VIP by a move for health, or null if it may: as
 * unhealthyTargetReason, and also while any of its checks has started failing. Asked by the
 * holder before it lets go: a refusal then leaves the VIP where it is, while a target that
 * refused the reservation afterwards would leave it vacant until the reservation expired.
 */
export async function unsteadyTargetReason(store: EtcdStore, keys: ClusterKeys, to: string): Promise<string | null> {
  const record = await readHealth(store, keys, to);
  if (!record || steady(record)) return null;
  const starting = record.checks.filter((check) => check.consecutiveFailures > 0).map((check) => check.name);
  return unhealthyReason(record, to) ?? `node "${to}" has checks failing (${starting.join(', ')}), below fall so far`;
}

/**
 * Publishes this node's health at start and whenever a check passes or fails anew. Not on a
 * timer: an idle node writes nothing, and every watcher (other agents, event streams) would
 * wake for a record that says the same. Each flip of the verdict also goes into the history.
 */
export class HealthPublisher {
  private chain: Promise<void> = Promise.resolve();
  /** The last verdict, null until the checks first rise after start: that rise is not a flip. */
  private verdict: boolean | null = null;

  constructor(
    private readonly store: EtcdStore,
    private readonly keys: ClusterKeys,
    private readonly current: () => NodeHealthRecord,
    private readonly onError: (error: Error) => void,
  ) {}

  start(): void {
    if (this.current().healthy) this.verdict = true;
    this.publish();
  }

  /** Writes in order: a slow write never lets an older record land after a newer one. */
  publish(): void {
    this.chain = this.chain.then(async () => {
      const record = this.current();
      const flipped = this.verdict !== null && this.verdict !== record.healthy;
      if (this.verdict !== null || record.healthy) this.verdict = record.healthy;
      try {
        await this.store.put(this.keys.health(record.node), JSON.stringify(record));
        if (flipped) await recordHealthEvent(this.store, this.keys, healthEventOf(record));
      } catch (error) {
        this.onError(error as Error);
      }
    });
  }

  async flushed(): Promise<void> {
    await this.chain;
  }
}

/**
 * Which nodes are running (alive/ keys) and healthy (health/ records), kept current by two
 * watches and a slow reread, so a watch lost for a while is caught up.
 */
export class ClusterHealthView {
  private readonly health = new Map<string, NodeHealthRecord>();
  private readonly alive = new Set<string>();
  private readonly watchers: Watcher[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: EtcdStore,
    private readonly keys: ClusterKeys,
    private readonly onChange: () => void,
    private readonly onError: (error: Error) => void,
    // A safety net only: etcd watches resume from their revision after a reconnection.
    private readonly rereadMs = 60_000,
  ) {}

  async start(): Promise<void> {
    try {
      await this.watchAndRead();
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.timer = setInterval(() => void this.reread().catch((error: Error) => this.onError(error)), this.rereadMs);
    this.timer.unref();
  }

  private async watchAndRead(): Promise<void> {
    const { store, keys } = this;
    const health = await store.watchPrefix(keys.healthPrefix);
    this.watchers.push(health);
    health.on('put', (kv) => {
      const stored = storedFromWatch(kv);
      const record = parseHealthRecord(stored.value);
      if (record) this.health.set(stored.key.slice(keys.healthPrefix.length), record);
      this.onChange();
    });
    health.on('delete', (kv) => {
      this.health.delete(storedFromWatch(kv).key.slice(keys.healthPrefix.length));
      this.onChange();
    });
    health.on('error', (error: Error) => this.onError(error));
    const alive = await store.watchPrefix(keys.alivePrefix);
    this.watchers.push(alive);
    alive.on('put', (kv) => {
      this.alive.add(storedFromWatch(kv).key.slice(keys.alivePrefix.length));
      this.onChange();
    });
    alive.on('delete', (kv) => {
      this.alive.delete(storedFromWatch(kv).key.slice(keys.alivePrefix.length));
      this.onChange();
    });
    alive.on('error', (error: Error) => this.onError(error));
    await this.reread();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    const watchers = this.watchers.splice(0);
    await Promise.race([
      Promise.all(watchers.map((watcher) => watcher.cancel().catch(() => undefined))),
      new Promise((resolve) => setTimeout(resolve, 500).unref()),
    ]);
  }

  private async reread(): Promise<void> {
    const [health, alive] = await Promise.all([readClusterHealth(this.store, this.keys), this.store.getPrefix(this.keys.alivePrefix)]);
    this.health.clear();
    for (const [node, record] of health) this.health.set(node, record);
    this.alive.clear();
    for (const entry of alive) this.alive.add(entry.key.slice(this.keys.alivePrefix.length));
    this.onChange();
  }

  /** Running nodes other than `self` whose checks all pass, by name. */
  healthyPeers(self: string): string[] {
    return [...this.alive].filter((node) => node !== self && this.health.get(node)?.healthy === true).sort();
  }

  /** Of those, the ones with no check failing at all right now (see agent/health-gate.ts). */
  moveTargets(self: string): string[] {
    return this.healthyPeers(self).filter((node) => steady(this.health.get(node)!));
  }
}
