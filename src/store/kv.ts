import type { EtcdStore } from './etcd-store';

/**
 * The few key-value operations the security modules need. The agent passes EtcdKeyValue;
 * unit tests pass MemoryKeyValue, so token and certificate logic is tested without etcd.
 */
export interface KeyValue {
  get(key: string): Promise<string | null>;
  put(key: string, value: string): Promise<void>;
  /** Writes the key only if it does not exist; returns what is stored afterwards (ours or a racer's). */
  putIfAbsent(key: string, value: string): Promise<string>;
  getPrefix(prefix: string): Promise<Array<{ key: string; value: string }>>;
  /** Returns whether the key existed. */
  delete(key: string): Promise<boolean>;
  /** The value with its mod revision, what compareAndPut compares. */
  getRevision(key: string): Promise<{ value: string; modRevision: number } | null>;
  /** Writes only if the key is unchanged since `modRevision`; false if another writer came first. */
  compareAndPut(key: string, value: string, modRevision: number): Promise<boolean>;
  /** Calls onChange after the key changes; resolves with a function that stops watching. */
  watch?(key: string, onChange: () => void): Promise<() => void>;
}

export class EtcdKeyValue implements KeyValue {
  constructor(private readonly store: EtcdStore) {}

  async get(key: string): Promise<string | null> {
    return (await this.store.get(key))?.value ?? null;
  }

  async put(key: string, value: string): Promise<void> {
    await this.store.put(key, value);
  }

  async putIfAbsent(key: string, value: string): Promise<string> {
    return (await this.store.putIfAbsent(key, value)).value;
  }

  async getPrefix(prefix: string): Promise<Array<{ key: string; value: string }>> {
    return (await this.store.getPrefix(prefix)).map(({ key, value }) => ({ key, value }));
  }

  async delete(key: string): Promise<boolean> {
    // EtcdStore has no delete of its own; its client is public for calls like this.
    const response = await this.store.client.delete().key(key).exec();
    return Number(response.deleted) > 0;
  }

  async getRevision(key: string): Promise<{ value: string; modRevision: number } | null> {
    const stored = await this.store.get(key);
    return stored ? { value: stored.value, modRevision: stored.modRevision } : null;
  }

  async compareAndPut(key: string, value: string, modRevision: number): Promise<boolean> {
    const keyBytes = Buffer.from(key);
    const response = await this.store.client.kv.txn({
      compare: [{ key: keyBytes, target: 'Mod', result: 'Equal', mod_revision: modRevision }],
      success: [{ request_put: { key: keyBytes, value: Buffer.from(value) } }],
    });
    return response.succeeded;
  }

  async watch(key: string, onChange: () => void): Promise<() => void> {
    const watcher = await this.store.watchKey(key);
    watcher.on('put', () => onChange());
    watcher.on('delete', () => onChange());
    // etcd3 reconnects the watch itself; a poll covers the gap, so errors need no handling here.
    watcher.on('error', () => undefined);
    return () => void watcher.cancel().catch(() => undefined);
  }
}

/** An in-process store: for tests and anything that needs no sharing between nodes. */
export class MemoryKeyValue implements KeyValue {
  readonly data = new Map<string, string>();
  private readonly revisions = new Map<string, number>();
  private revision = 0;
  private readonly watchers = new Map<string, Set<() => void>>();

  async get(key: string): Promise<string | null> {
    return this.data.get(key) ?? null;
  }

  async put(key: string, value: string): Promise<void> {
    this.data.set(key, value);
    this.revisions.set(key, ++this.revision);
    this.notify(key);
  }

  async getRevision(key: string): Promise<{ value: string; modRevision: number } | null> {
    const value = this.data.get(key);
    return value === undefined ? null : { value, modRevision: this.revisions.get(key) ?? 0 };
  }

  async compareAndPut(key: string, value: string, modRevision: number): Promise<boolean> {
    if ((this.revisions.get(key) ?? 0) !== modRevision) return false;
    await this.put(key, value);
    return true;
  }

  async putIfAbsent(key: string, value: string): Promise<string> {
    const existing = this.data.get(key);
    if (existing !== undefined) return existing;
    await this.put(key, value);
    return value;
  }

  async getPrefix(prefix: string): Promise<Array<{ key: string; value: string }>> {
    return [...this.data.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, value]) => ({ key, value }));
  }

  async delete(key: string): Promise<boolean> {
    const existed = this.data.delete(key);
    this.revisions.delete(key);
    if (existed) this.notify(key);
    return existed;
  }

  async watch(key: string, onChange: () => void): Promise<() => void> {
    const set = this.watchers.get(key) ?? new Set();
    set.add(onChange);
    this.watchers.set(key, set);
    return () => set.delete(onChange);
  }

  private notify(key: string): void {
    for (const listener of this.watchers.get(key) ?? []) queueMicrotask(listener);
  }
}
