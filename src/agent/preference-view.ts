/**
 * Every node's cordon and priority as stored (issue 14), kept current by two watches and a
 * slow reread, for the agent's decisions in ./preference.ts.
 */
import type { Watcher } from 'etcd3';
import { storedFromWatch, type EtcdStore } from '../store/etcd-store';
import type { ClusterKeys } from '../store/keys';
import { readCordons, readPriorities } from '../store/maintenance';
import type { CordonRecord, PriorityRecord } from '../store/records';
import { parseCordonRecord, parsePriorityRecord } from '../store/records';
import type { CordonState } from './preference';

export class PreferenceView {
  private readonly cordons = new Map<string, CordonRecord>();
  private readonly priorities = new Map<string, PriorityRecord>();
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
      this.follow(await this.store.watchPrefix(this.keys.cordonsPrefix), this.keys.cordonsPrefix, this.cordons, (node, value) => parseCordonRecord(value) ?? { node, strict: false, by: 'unknown', reason: 'damaged record', time: '' });
      this.follow(await this.store.watchPrefix(this.keys.prioritiesPrefix), this.keys.prioritiesPrefix, this.priorities, (_node, value) => parsePriorityRecord(value));
      await this.reread();
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.timer = setInterval(() => void this.reread().catch((error: Error) => this.onError(error)), this.rereadMs);
    this.timer.unref();
  }

  private follow<T>(watcher: Watcher, prefix: string, into: Map<string, T>, parse: (node: string, value: string) => T | null): void {
    this.watchers.push(watcher);
    watcher.on('put', (kv) => {
      const stored = storedFromWatch(kv);
      const node = stored.key.slice(prefix.length);
      const record = parse(node, stored.value);
      if (record) into.set(node, record);
      this.onChange();
    });
    watcher.on('delete', (kv) => {
      into.delete(storedFromWatch(kv).key.slice(prefix.length));
      this.onChange();
    });
    watcher.on('error', (error: Error) => this.onError(error));
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
    const [cordons, priorities] = await Promise.all([readCordons(this.store, this.keys), readPriorities(this.store, this.keys)]);
    this.cordons.clear();
    for (const [node, record] of cordons) this.cordons.set(node, record);
    this.priorities.clear();
    for (const [node, record] of priorities) this.priorities.set(node, record);
    this.onChange();
  }

  cordonOf(node: string): CordonState {
    const record = this.cordons.get(node);
    return !record ? 'none' : record.strict ? 'strict' : 'cordoned';
  }

  cordonRecord(node: string): CordonRecord | null {
    return this.cordons.get(node) ?? null;
  }

  /** The stored priority, or `fallback` for a node that published none (an agent from before issue 14). */
  priorityOf(node: string, fallback = 100): number {
    return this.priorities.get(node)?.priority ?? fallback;
  }

  /** Every node with a stored priority: registered, whether running or not. */
  knownNodes(): string[] {
    return [...this.priorities.keys()];
  }
}
