import type { EtcdStore } from './etcd-store';
import { hookFailuresPrefix, hookRunsPrefix, type ClusterKeys } from './keys';
import type { HookFailureRecord, HookRunRecord } from './records';
/** Where the hook runner keeps its runs and required-hook failures. */
export interface HookHistory {
  record(run: HookRunRecord): Promise<void>;
  setFailure(failure: HookFailureRecord): Promise<void>;
  clearFailure(node: string): Promise<void>;
}

/** The hook history keeps this many runs; the writer trims older ones. */
export const HOOK_HISTORY_LIMIT = 100;

/** Hook runs under /vipd/<cluster>/hooks/, capped; required-hook failures under hook-failures/<node>. */
export class EtcdHookHistory implements HookHistory {
  private sequence = 0;

  constructor(
    private readonly store: EtcdStore,
    private readonly keys: ClusterKeys,
  ) {}

  async record(run: HookRunRecord): Promise<void> {
    const prefix = hookRunsPrefix(this.keys);
    // Time first, so keys sort oldest first across nodes.
    this.sequence = (this.sequence + 1) % 1_000_000;
    const key = `${prefix}${String(Date.now()).padStart(15, '0')}-${run.node}-${String(this.sequence).padStart(6, '0')}`;
    await this.store.put(key, JSON.stringify(run));
    const existing = await this.store.client.getAll().prefix(prefix).keys();
    if (existing.length <= HOOK_HISTORY_LIMIT) return;
    const sorted = existing.sort();
    const firstKept = sorted[sorted.length - HOOK_HISTORY_LIMIT];
    if (firstKept) await this.store.deleteRange(prefix, firstKept);
  }

  async setFailure(failure: HookFailureRecord): Promise<void> {
    await this.store.put(`${hookFailuresPrefix(this.keys)}${failure.node}`, JSON.stringify(failure));
  }

  async clearFailure(node: string): Promise<void> {
    await this.store.delete(`${hookFailuresPrefix(this.keys)}${node}`);
  }
}

/** The most recent required-hook failure of any node still unresolved, for status. */
export async function readHookFailure(store: EtcdStore, keys: ClusterKeys): Promise<HookFailureRecord | null> {
  const stored = await store.getPrefix(hookFailuresPrefix(keys));
  let newest: HookFailureRecord | null = null;
  for (const entry of stored) {
    try {
      const record = JSON.parse(entry.value) as HookFailureRecord;
      if (!newest || record.time > newest.time) newest = record;
    } catch {
      // Not a failure record: skip it.
    }
  }
  return newest;
}
