import type { Logger } from 'pino';
import type { Config } from '../config/config';
import { newMoveRequest, prepareMove, submitMove } from '../election/move-request';
import type { ServingCertificates } from '../security/certificates';
import { lastSeenOf } from '../status/management-address';
import { readManagementAddress } from '../status/read';
import { watchClusterChanges, type ClusterChange } from '../status/changes';
import type { EtcdStore } from '../store/etcd-store';
import { listAdminEvents, listHealthEvents, listMoves } from '../store/history';
import { cordonNode, readCordon, readCordons, readPriorities, setPriority, uncordonNode } from '../store/maintenance';
import type { ClusterKeys } from '../store/keys';
import { Membership } from '../store/membership';
import { parseLeader, type AdminEvent, type CordonRecord, type HealthEvent, type MoveEvent, type NodeHealthRecord } from '../store/records';
import { readClusterHealth } from '../health/cluster';
import type { ApiBackend, ApiManagementAddress, MoveAccepted, NodePreference, NodeStatus } from './backend';

/** How long a move request waits for the holder to act on it before etcd drops it. */
const MOVE_REQUEST_TTL_MS = 10_000;

/** The API's view of the cluster, read from etcd so every node answers alike. */
export class StoreApiBackend implements ApiBackend {
  private readonly listeners = new Set<(change: ClusterChange) => void>();
  private stopWatching: () => Promise<void> = async () => undefined;
  private readonly membership: Membership;

  constructor(
    private readonly options: {
      store: EtcdStore;
      keys: ClusterKeys;
      config: Config;
      self: { name: string; ip: string };
      ca: { caFingerprint(): string };
      certificates: ServingCertificates;
      logger: Logger;
    },
  ) {
    this.membership = new Membership(options.store, options.keys);
  }

  /** Watches the cluster's changes, to stream them and to date departures. */
  async start(): Promise<void> {
    const { store, keys } = this.options;
    this.stopWatching = await watchClusterChanges(store, keys, (change) => {
      if (change.type === 'node' && !change.event.healthy) void this.recordDeparture(change.event.node);
      for (const listener of this.listeners) listener(change);
    });
  }

  async stop(): Promise<void> {
    await Promise.race([this.stopWatching(), new Promise((resolve) => setTimeout(resolve, 500).unref())]);
  }

  /** Every node that sees a liveness key vanish writes the time: the same fact, no read-modify-write. */
  private async recordDeparture(name: string): Promise<void> {
    const { store, keys } = this.options;
    try {
      await store.put(keys.lastSeen(name), new Date().toISOString());
    } catch (error) {
      this.options.logger.debug({ err: (error as Error).message, node: name }, 'could not record when a node was last seen');
    }
  }

  async managementAddress(): Promise<ApiManagementAddress> {
    const { store, keys, config, ca, certificates } = this.options;
    const view = await readManagementAddress(store, keys, config);
    return {
      ...view,
      status: { ...view.status, caFingerprint: ca.caFingerprint(), certificateWarning: certificates.status().warning ?? null },
    };
  }

  async nodes(): Promise<NodeStatus[]> {
    const { store, keys } = this.options;
    const [records, live, leader, seen, moves, health, cordons, priorities] = await Promise.all([
      this.membership.listNodes(),
      this.membership.liveNodeNames(),
      store.get(keys.leader),
      store.getPrefix(keys.lastSeenPrefix),
      listMoves(store, keys),
      readClusterHealth(store, keys),
      readCordons(store, keys),
      readPriorities(store, keys),
    ]);
    const holder = parseLeader(leader)?.node;
    const lastSeen = new Map(seen.map((entry) => [entry.key.slice(keys.lastSeenPrefix.length), entry.value]));
    const now = new Date().toISOString();
    return records
      .map((record) => ({
        name: record.name,
        ip: record.ip,
        healthy: live.has(record.name),
        lastSeen: live.has(record.name) ? now : lastSeenOf(record, lastSeen.get(record.name), moves),
        holdsVip: record.name === holder,
        health: healthOf(health.get(record.name)),
        healthSince: health.get(record.name)?.since ?? null,
        checks: health.get(record.name)?.checks ?? [],
        priority: priorities.get(record.name)?.priority ?? null,
        cordon: cordonOf(cordons.get(record.name)),
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async events(limit?: number): Promise<MoveEvent[]> {
    return await listMoves(this.options.store, this.options.keys, limit);
  }

  async healthEvents(limit?: number): Promise<HealthEvent[]> {
    return await listHealthEvents(this.options.store, this.options.keys, limit);
  }

  async adminEvents(limit?: number): Promise<AdminEvent[]> {
    return await listAdminEvents(this.options.store, this.options.keys, limit);
  }

  async cordon(node: string, options: { strict: boolean; reason: string | null; by: string }): Promise<NodePreference> {
    const changed = await cordonNode(this.options.store, this.options.keys, node, options);
    return await this.preferenceOf(node, changed);
  }

  async uncordon(node: string, by: string): Promise<NodePreference> {
    const changed = await uncordonNode(this.options.store, this.options.keys, node, by);
    return await this.preferenceOf(node, changed);
  }

  async setPriority(node: string, priority: number, by: string): Promise<NodePreference> {
    await setPriority(this.options.store, this.options.keys, node, priority, by);
    return await this.preferenceOf(node, true);
  }

  private async preferenceOf(node: string, changed: boolean): Promise<NodePreference> {
    const { store, keys } = this.options;
    const [cordon, priorities] = await Promise.all([readCordon(store, keys, node), readPriorities(store, keys)]);
    return { node, changed, priority: priorities.get(node)?.priority ?? null, cordon: cordonOf(cordon ?? undefined) };
  }

  subscribe(listener: (change: ClusterChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async move(to: string, requestedBy: string): Promise<{ answer: MoveAccepted; submit: (() => Promise<void>) | null }> {
    const { store, keys } = this.options;
    const prepared = await prepareMove(store, keys, to);
    const request = newMoveRequest(to, requestedBy);
    const answer: MoveAccepted = {
      id: request.id ?? '',
      state: prepared.done ? 'done' : 'accepted',
      from: prepared.from.node,
      to,
      term: prepared.from.term,
      requestedAt: request.requestedAt,
    };
    return { answer, submit: prepared.done ? null : () => submitMove(store, keys, request, MOVE_REQUEST_TTL_MS) };
  }

  localNode(): { name: string; ip: string } {
    return this.options.self;
  }

  fqdn(): string | null {
    return this.options.config.api.fqdn;
  }
}

function cordonOf(record: CordonRecord | undefined): NodePreference['cordon'] {
  return record ? { strict: record.strict, by: record.by, reason: record.reason, since: record.time } : null;
}

function healthOf(record: NodeHealthRecord | undefined): NodeStatus['health'] {
  return !record ? 'unknown' : record.healthy ? 'passing' : 'failing';
}
