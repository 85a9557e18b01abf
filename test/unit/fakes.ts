import { ClusterKeys } from '../../src/store/keys';
import { ClusterCa } from '../../src/security/ca';
import { ServingCertificates } from '../../src/security/certificates';
import { MemoryKeyValue } from '../../src/store/kv';
import { securityKeys, type SecurityKeys } from '../../src/store/keys';
import { TokenStore } from '../../src/security/tokens';
import {
  MoveRefusedError,
  type ApiBackend,
  type ApiManagementAddress,
  type ClusterChange,
  type MoveAccepted,
  type MoveEvent,
  type NodeStatus,
} from '../../src/api/backend';
import type { AdminEvent, CordonRecord, HealthEvent, NodeRecord } from '../../src/store/records';
import type { NodePreference } from '../../src/api/backend';
import { StoreApiBackend } from '../../src/api/store-backend';
import type { EtcdStore, StoredValue } from '../../src/store/etcd-store';
import { readCordons, readPriorities } from '../../src/store/maintenance';
import { resolveConfig } from '../../src/config/config';
import pino from 'pino';
import { buildApiServer, type ApiServer, type ApiServerOptions } from '../../src/api/server';
import { describeManagementAddress } from '../../src/status/management-address';

const MACS: Record<string, string> = {
  'node-1': '8c:dc:d4:b5:f0:01',
  'node-2': '8c:dc:d4:b5:f0:02',
  'node-3': '8c:dc:d4:b5:f0:03',
};

/** The few etcd calls the cordon, priority and history code makes, in memory. */
export class MemoryEtcdStore {
  readonly values = new Map<string, string>();
  private revision = 1;

  async get(key: string): Promise<StoredValue | null> {
    const value = this.values.get(key);
    return value === undefined ? null : { key, value, createRevision: 1, modRevision: this.revision, lease: '0' };
  }
  async getPrefix(prefix: string): Promise<StoredValue[]> {
    const keys = [...this.values.keys()].filter((key) => key.startsWith(prefix));
    return keys.map((key) => ({ key, value: this.values.get(key)!, createRevision: 1, modRevision: this.revision, lease: '0' }));
  }
  async put(key: string, value: string): Promise<void> {
    this.revision += 1;
    this.values.set(key, value);
  }
  async delete(key: string): Promise<void> {
    this.values.delete(key);
  }
  /** etcd's range delete: [from, to). */
  async deleteRange(from: string, to: string): Promise<void> {
    for (const key of [...this.values.keys()]) if (key >= from && key < to) this.values.delete(key);
  }
  asStore(): EtcdStore {
    return this as unknown as EtcdStore;
  }
}

/** An agent in memory: three nodes, node-3 unhealthy, node-1 holding the VIP. */
export class FakeBackend implements ApiBackend {
  /** Cordons, priorities and operators' events go through the real store code (src/store/maintenance.ts). */
  readonly etcd = new MemoryEtcdStore();
  readonly clusterKeys = new ClusterKeys('demo');
  /** The real backend's cordon, priority and history code, over the memory store (its other parts are not used). */
  private readonly store = new StoreApiBackend({
    store: this.etcd.asStore(),
    keys: this.clusterKeys,
    config: resolveConfig({ cluster: 'demo', node: { name: 'node-2', interface: 'mgmt-br' }, vip: { mode: 'static', address: '192.0.2.10' }, etcd: { endpoints: ['http://192.0.2.12:2379'] } }),
    self: { name: 'node-2', ip: '192.0.2.12' },
    ca: { caFingerprint: () => '' },
    certificates: {} as ConstructorParameters<typeof StoreApiBackend>[0]['certificates'],
    logger: pino({ level: 'silent' }),
  });
  readonly vip = '192.0.2.10';
  nodeList: Array<Omit<NodeStatus, 'holdsVip'>> = [
    { name: 'node-1', ip: '192.0.2.11', healthy: true, lastSeen: new Date().toISOString(), ...passing() },
    { name: 'node-2', ip: '192.0.2.12', healthy: true, lastSeen: new Date().toISOString(), ...passing() },
    { name: 'node-3', ip: '192.0.2.13', healthy: false, lastSeen: new Date(Date.now() - 600_000).toISOString(), health: 'unknown', healthSince: null, checks: [] },
  ];
  holder: string | null = 'node-1';
  since = new Date(Date.now() - 42 * 60_000).toISOString();
  term = 7;
  history: MoveEvent[] = [
    { from: null, to: 'node-2', reason: 'first holder elected', term: 5, time: new Date(Date.now() - 3 * 3600_000).toISOString() },
    { from: 'node-2', to: 'node-1', reason: 'lease expired: node-2 stopped renewing', term: 7, time: this.since },
  ];
  healthHistory: HealthEvent[] = [];
  caFingerprint: string | undefined;
  certificateWarning: string | null = null;
  /** A field the response schema does not know: it must not reach clients. */
  leakField = true;
  readonly listeners = new Set<(change: ClusterChange) => void>();
  readonly moves: string[] = [];
  readonly requesters: string[] = [];

  async managementAddress(): Promise<ApiManagementAddress> {
    const node = this.nodeList.find((candidate) => candidate.name === this.holder);
    const view = describeManagementAddress({
      cluster: 'demo',
      address: this.vip,
      mode: 'static',
      interface: 'mgmt-br',
      leader: node ? { node: node.name, ip: node.ip, mac: MACS[node.name] ?? '', since: this.since, term: this.term } : null,
      nodes: this.nodeList.map((entry) => ({
        name: entry.name,
        running: entry.healthy,
        health: entry.health,
        since: entry.healthSince,
        failing: entry.checks.filter((check) => !check.passing).map((check) => ({ check: check.name, detail: check.lastResult?.detail ?? null, since: check.since })),
      })),
    });
    const status = {
      ...view.status,
      ...(this.caFingerprint ? { caFingerprint: this.caFingerprint } : {}),
      certificateWarning: this.certificateWarning,
      ...(this.leakField ? { internalSecret: 'must-not-leak' } : {}),
    };
    return { ...view, status };
  }

  async nodes(): Promise<NodeStatus[]> {
    const [cordons, priorities] = await Promise.all([readCordons(this.etcd.asStore(), this.clusterKeys), readPriorities(this.etcd.asStore(), this.clusterKeys)]);
    return this.nodeList.map((node) => ({
      ...node,
      holdsVip: node.name === this.holder,
      priority: priorities.get(node.name)?.priority ?? null,
      cordon: cordonView(cordons.get(node.name)),
    }));
  }

  async events(limit?: number): Promise<MoveEvent[]> {
    return limit === undefined ? [...this.history] : this.history.slice(-limit);
  }

  async healthEvents(limit?: number): Promise<HealthEvent[]> {
    return limit === undefined ? [...this.healthHistory] : this.healthHistory.slice(-limit);
  }

  async adminEvents(limit?: number): Promise<AdminEvent[]> {
    return await this.store.adminEvents(limit);
  }

  async cordon(node: string, options: { strict: boolean; reason: string | null; by: string }): Promise<NodePreference> {
    await this.registerNodes();
    return this.streamed(await this.store.cordon(node, options));
  }

  async uncordon(node: string, by: string): Promise<NodePreference> {
    await this.registerNodes();
    return this.streamed(await this.store.uncordon(node, by));
  }

  async setPriority(node: string, priority: number, by: string): Promise<NodePreference> {
    await this.registerNodes();
    return this.streamed(await this.store.setPriority(node, priority, by));
  }

  /** The node registrations the store code checks names against: those of nodeList. */
  private async registerNodes(): Promise<void> {
    for (const node of this.nodeList) {
      const record: NodeRecord = { name: node.name, interface: 'mgmt-br', ip: node.ip, prefixLength: 24, mac: MACS[node.name] ?? '', mtu: 1500, registeredAt: this.since };
      await this.etcd.put(this.clusterKeys.node(node.name), JSON.stringify(record));
    }
  }

  /** A change reaches the event stream as the store's watch would report it. */
  private async streamed(answer: NodePreference): Promise<NodePreference> {
    const newest = answer.changed ? (await this.adminEvents(1))[0] : undefined;
    if (newest) this.emit({ type: 'admin', event: newest });
    return answer;
  }

  subscribe(listener: (change: ClusterChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async move(to: string, requestedBy: string): Promise<{ answer: MoveAccepted; submit: (() => Promise<void>) | null }> {
    const node = this.nodeList.find((candidate) => candidate.name === to);
    if (!node) throw new MoveRefusedError(`unknown node "${to}" (registered nodes: ${this.nodeList.map((n) => n.name).join(', ')})`);
    if (!node.healthy) throw new MoveRefusedError(`node "${to}" is not healthy: its agent is not running`);
    if (node.health === 'failing') throw new MoveRefusedError(`node "${to}" is unhealthy: check ${node.checks.filter((check) => !check.passing).map((check) => check.name).join(', ')} failing`);
    const done = this.holder === to;
    const answer: MoveAccepted = { id: `m${this.moves.length + 1}`, state: done ? 'done' : 'accepted', from: this.holder ?? '', to, term: this.term, requestedAt: new Date().toISOString() };
    const submit = async (): Promise<void> => {
      this.moves.push(to);
      this.requesters.push(requestedBy);
      this.moveTo(to, `planned move to ${to} requested by ${requestedBy} (move ${answer.id})`);
    };
    return { answer, submit: done ? null : submit };
  }

  /** A node's api check starts failing (detail given) or passes again (null), as its agent would publish it. */
  setCheck(name: string, failing: string | null): void {
    const node = this.nodeList.find((candidate) => candidate.name === name);
    if (!node) throw new Error(`no node ${name}`);
    const time = new Date().toISOString();
    Object.assign(node, passing(failing, time));
    this.emit({ type: 'health', event: { node: name, healthy: failing === null, failing: failing === null ? [] : [{ check: 'api', detail: failing }], time } });
  }

  /** What the store's watch reports: a node's agent starting or stopping, a lease change. */
  emit(change: ClusterChange): void {
    for (const listener of this.listeners) listener(change);
  }

  /** What the agent does when the VIP changes hands: new holder, new term, one event. */
  moveTo(to: string | null, reason: string): MoveEvent {
    const event: MoveEvent = { from: this.holder, to, reason, term: to ? this.term + 1 : null, time: new Date().toISOString() };
    this.holder = to;
    if (to) {
      this.term += 1;
      this.since = event.time;
    }
    this.history.push(event);
    this.emit({ type: 'move', event });
    return event;
  }

  localNode(): { name: string; ip: string } {
    return { name: 'node-2', ip: '192.0.2.12' };
  }

  fqdn(): string | null {
    return 'mgmt.example.test';
  }
}

function cordonView(record: CordonRecord | undefined): NodeStatus['cordon'] {
  return record ? { strict: record.strict, by: record.by, reason: record.reason, since: record.time } : null;
}

/** One http check named api, passing, or failing with `failing` as its last result. */
function passing(failing: string | null = null, time = new Date(Date.now() - 3600_000).toISOString()): Pick<NodeStatus, 'health' | 'healthSince' | 'checks'> {
  return {
    health: failing === null ? 'passing' : 'failing',
    healthSince: time,
    checks: [
      {
        name: 'api',
        kind: 'http',
        target: 'https://127.0.0.1:6443/readyz',
        passing: failing === null,
        since: time,
        consecutiveFailures: failing === null ? 0 : 3,
        consecutiveSuccesses: failing === null ? 5 : 0,
        fall: 3,
        rise: 2,
        lastResult: { ok: failing === null, detail: failing ?? 'HTTP 200', output: '', durationMs: 2, time },
      },
    ],
  };
}

export const FQDN = 'mgmt.example.test';
export const VIP = '192.0.2.10';

/** A whole API server in memory: CA, serving certificate, tokens, fake agent. */
export interface ApiWorld {
  kv: MemoryKeyValue;
  keys: SecurityKeys;
  ca: ClusterCa;
  certificates: ServingCertificates;
  tokens: TokenStore;
  backend: FakeBackend;
  app: ApiServer;
  adminToken: string;
  readToken: string;
  /** Moves the token store's clock, e.g. past a token's expiry. */
  clock: { offsetMs: number };
}

export async function createApiWorld(overrides: Partial<ApiServerOptions> = {}, nodeIp = '127.0.0.1'): Promise<ApiWorld> {
  const kv = new MemoryKeyValue();
  const keys = securityKeys(new ClusterKeys('demo'));
  const ca = await ClusterCa.loadOrCreate(kv, keys.ca, { cluster: 'demo' });
  // The node IP is loopback so live tests can verify the served certificate properly.
  const certificates = new ServingCertificates({ kv, keys, ca, node: { name: 'node-2', ip: nodeIp }, vip: VIP, fqdn: FQDN });
  await certificates.start();
  const clock = { offsetMs: 0 };
  const tokens = new TokenStore(kv, keys, () => new Date(Date.now() + clock.offsetMs));
  const backend = new FakeBackend();
  backend.caFingerprint = ca.caFingerprint();
  const adminToken = (await tokens.create({ role: 'admin', description: 'test admin' })).token;
  const readToken = (await tokens.create({ role: 'read', description: 'test read' })).token;
  const app = buildApiServer({ backend, tokens, certificates, tls: certificates.tlsOptions(), ...overrides });
  certificates.attach(app.server);
  return { kv, keys, ca, certificates, tokens, backend, app, adminToken, readToken, clock };
}
