import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import pino from 'pino';
import { PlannedMoves, type MovesHost, type PlannedMoveCause } from '../../src/election/handoff';
import { prepareMove, MoveRefusedError } from '../../src/election/move-request';
import type { EtcdStore, ReleaseWrites, StoredValue } from '../../src/store/etcd-store';
import { ClusterKeys } from '../../src/store/keys';
import type { MoveRequest, NodeHealthRecord } from '../../src/store/records';

const keys = new ClusterKeys('demo');

/** The keys a planned move reads and writes, in memory. */
class MemoryStore {
  readonly values = new Map<string, string>();
  readonly resigned: ReleaseWrites[] = [];

  async get(key: string): Promise<StoredValue | null> {
    const value = this.values.get(key);
    return value === undefined ? null : { key, value, createRevision: 1, modRevision: 1, lease: '0' };
  }
  async getPrefix(prefix: string): Promise<StoredValue[]> {
    return [...this.values.keys()].filter((key) => key.startsWith(prefix)).map((key) => ({ key, value: this.values.get(key)!, createRevision: 1, modRevision: 1, lease: '0' }));
  }
  async delete(key: string): Promise<void> {
    this.values.delete(key);
  }
  async grantLease(ttlSeconds: number): Promise<{ id: string; ttlSeconds: number }> {
    return { id: '9', ttlSeconds };
  }
  async resign(_leader: string, _lease: string, writes: ReleaseWrites = {}): Promise<boolean> {
    this.resigned.push(writes);
    return true;
  }
  async watchKey(): Promise<EventEmitter> {
    return new EventEmitter();
  }
}

function health(node: string, healthy: boolean): string {
  const record: NodeHealthRecord = { node, healthy, failing: healthy ? [] : ['api'], since: '', updatedAt: '', checks: [] };
  return JSON.stringify(record);
}

function holder(store: MemoryStore): { moves: PlannedMoves; released: PlannedMoveCause[]; begun: Array<[string, string, PlannedMoveCause]> } {
  const released: PlannedMoveCause[] = [];
  const begun: Array<[string, string, PlannedMoveCause]> = [];
  const host: MovesHost = {
    store: store as unknown as EtcdStore,
    keys,
    node: 'node-1',
    leaseTtlSeconds: 2,
    logger: pino({ level: 'silent' }),
    releaseVip: async (cause) => void released.push(cause),
    held: () => ({ leaseId: '1', term: 7 }),
    followerLease: () => null,
    mayClaim: () => false,
    isStale: () => false,
    previousHolder: () => null,
    newRecord: () => ({ node: 'node-1', ip: '192.0.2.11', mac: '', since: '' }),
    releaseRecord: (term, reason) => ({ node: 'node-1', term, reason, vipRemoved: true, time: '' }),
    beginHandoff: (to, reason, cause) => {
      begun.push([to, reason, cause]);
      return true;
    },
    endHandoff: () => undefined,
    beginClaim: () => undefined,
    endClaim: () => undefined,
    wonByHandoff: async () => undefined,
    noteError: (what, error) => assert.fail(`${what}: ${String(error)}`),
  };
  return { moves: new PlannedMoves(host), released, begun };
}

function request(to: string, extra: Partial<MoveRequest> = {}): string {
  return JSON.stringify({ id: 'ab12', to, requestedBy: 'vipd health on node-1', requestedAt: '', ...extra });
}

test('a health move hands off with cause health and a reason naming the failing check', async () => {
  const store = new MemoryStore();
  store.values.set(keys.alive('node-2'), '{}');
  store.values.set(keys.health('node-2'), health('node-2', true));
  store.values.set(keys.moveRequest, request('node-2', { cause: 'health', why: 'check api failing: HTTP 503' }));
  const { moves, released, begun } = holder(store);
  await moves.check();
  assert.deepEqual(begun, [['node-2', 'health: check api failing: HTTP 503; planned move to node-2 (move ab12)', 'health']]);
  assert.deepEqual(released, ['health']);
  assert.equal(store.resigned.length, 1);
  assert.match(store.resigned[0]!.put![0]!.value, /"to":"node-2"/);
});

test('a person\'s move keeps cause handoff', async () => {
  const store = new MemoryStore();
  store.values.set(keys.alive('node-2'), '{}');
  store.values.set(keys.moveRequest, request('node-2', { requestedBy: 'admin' }));
  const { moves, begun } = holder(store);
  await moves.check();
  assert.deepEqual(begun, [['node-2', 'planned move to node-2 requested by admin (move ab12)', 'handoff']]);
});

test('the holder refuses a move to a node whose published health fails: the VIP stays, the request is dropped', async () => {
  const store = new MemoryStore();
  store.values.set(keys.alive('node-2'), '{}');
  store.values.set(keys.health('node-2'), health('node-2', false));
  store.values.set(keys.moveRequest, request('node-2'));
  const { moves, released, begun } = holder(store);
  await moves.check();
  assert.deepEqual([begun, released, store.resigned], [[], [], []]);
  assert.equal(store.values.has(keys.moveRequest), false);
});

test('vipd move to a node whose checks fail is refused with the reason; one that published no health is not', async () => {
  const store = new MemoryStore();
  for (const name of ['node-1', 'node-2', 'node-3']) {
    store.values.set(keys.node(name), JSON.stringify({ name, ip: '', interface: '', prefixLength: 24, mac: '', mtu: 1500, registeredAt: '' }));
    store.values.set(keys.alive(name), '{}');
  }
  store.values.set(keys.leader, JSON.stringify({ node: 'node-1', ip: '', mac: '', since: '', term: 7 }));
  store.values.set(keys.health('node-2'), health('node-2', false));
  await assert.rejects(prepareMove(store as unknown as EtcdStore, keys, 'node-2'), (error: unknown) => error instanceof MoveRefusedError && error.message === 'node "node-2" is unhealthy: check api failing');
  assert.equal((await prepareMove(store as unknown as EtcdStore, keys, 'node-3')).to, 'node-3');
});

test('a health move waits while the target\'s own checks have started failing, below fall; a person\'s move does not', async () => {
  // node-2 is healthy by verdict, but its api check has failed once since its last success (every service died at once).
  const wavering: NodeHealthRecord = {
    node: 'node-2', healthy: true, failing: [], since: '', updatedAt: '',
    checks: [{ name: 'api', kind: 'http', target: 'http://127.0.0.1/', passing: true, since: '', consecutiveFailures: 1, consecutiveSuccesses: 0, fall: 3, rise: 2, lastResult: null }],
  };
  const store = new MemoryStore();
  store.values.set(keys.alive('node-2'), '{}');
  store.values.set(keys.health('node-2'), JSON.stringify(wavering));
  store.values.set(keys.moveRequest, request('node-2', { cause: 'health', why: 'check api failing: HTTP 503' }));
  const { moves, released, begun } = holder(store);
  await moves.check();
  assert.deepEqual([begun, released, store.resigned], [[], [], []], 'the VIP stays where it is');
  assert.equal(store.values.has(keys.moveRequest), false);
  store.values.set(keys.moveRequest, request('node-2', { requestedBy: 'admin' }));
  await moves.check();
  assert.deepEqual(begun.map(([to, , cause]) => [to, cause]), [['node-2', 'handoff']]);
});
