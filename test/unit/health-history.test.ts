import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/config';
import { HealthPublisher } from '../../src/health/cluster';
import { HealthMonitor } from '../../src/health/monitor';
import type { ProbeResult } from '../../src/health/probes';
import { mergeHistory } from '../../src/status/changes';
import { changeAsJson, formatChangeLine } from '../../src/status/change-text';
import type { EtcdStore, StoredValue } from '../../src/store/etcd-store';
import { HEALTH_HISTORY_LIMIT, listHealthEvents, recordHealthEvent } from '../../src/store/history';
import { ClusterKeys } from '../../src/store/keys';
import type { HealthEvent, MoveEvent } from '../../src/store/records';

const keys = new ClusterKeys('demo');

/** The few store calls the health history makes, in memory. */
class MemoryStore {
  readonly values = new Map<string, string>();

  async put(key: string, value: string): Promise<void> {
    this.values.set(key, value);
  }
  async getPrefix(prefix: string): Promise<StoredValue[]> {
    return [...this.values.keys()].filter((key) => key.startsWith(prefix)).map((key) => ({ key, value: this.values.get(key)!, createRevision: 1, modRevision: 1, lease: '0' }));
  }
  /** etcd's range delete: [from, end of prefix). */
  async deleteRange(prefix: string, end: string): Promise<void> {
    for (const key of [...this.values.keys()]) if (key.startsWith(prefix) && key < end) this.values.delete(key);
  }
}

/** One tcp check, fall 3, rise 2. */
function apiCheck() {
  return resolveConfig({
    cluster: 'demo',
    node: { name: 'node-1', interface: 'mgmt-br' },
    vip: { mode: 'static', address: '192.0.2.10' },
    etcd: { endpoints: ['http://192.0.2.11:2379'] },
    health: { checks: [{ name: 'api', tcp: '127.0.0.1:1', fall: 3, rise: 2 }] },
  }).health.checks;
}

function monitor(): HealthMonitor {
  return new HealthMonitor({ node: 'node-1', checks: apiCheck() });
}

const ok: ProbeResult = { ok: true, detail: 'connected', output: '', durationMs: 1 };
const bad: ProbeResult = { ok: false, detail: 'connection refused', output: '', durationMs: 1 };

test('each flip of a node\'s verdict goes into the stored history, the first rise after start does not', async () => {
  const store = new MemoryStore();
  const health = monitor();
  const publisher = new HealthPublisher(store as unknown as EtcdStore, keys, () => health.snapshot(), (error) => assert.fail(error));
  const feed = async (result: ProbeResult, times: number): Promise<void> => {
    for (let i = 0; i < times; i += 1) health.feed('api', result);
    publisher.publish();
    await publisher.flushed();
  };
  publisher.start();
  await publisher.flushed();
  await feed(ok, 2);
  assert.deepEqual(await listHealthEvents(store as unknown as EtcdStore, keys), [], 'rising after start is not a flip');
  await feed(bad, 2);
  assert.deepEqual(await listHealthEvents(store as unknown as EtcdStore, keys), [], 'two failures are below fall');
  await feed(bad, 1);
  await feed(ok, 1);
  await feed(ok, 1);
  const events = await listHealthEvents(store as unknown as EtcdStore, keys);
  assert.deepEqual(
    events.map(({ node, healthy, failing }) => ({ node, healthy, failing })),
    [
      { node: 'node-1', healthy: false, failing: [{ check: 'api', detail: 'connection refused' }] },
      { node: 'node-1', healthy: true, failing: [] },
    ],
  );
  assert.ok(events.every((event) => !Number.isNaN(Date.parse(event.time))));
  // A record republished with the same verdict adds nothing.
  publisher.publish();
  await publisher.flushed();
  assert.equal((await listHealthEvents(store as unknown as EtcdStore, keys)).length, 2);
  assert.ok(store.values.has(keys.health('node-1')), 'the health record itself is still published');
});

test('the health history is bounded like the move history, oldest dropped first', async () => {
  const store = new MemoryStore();
  const base = Date.parse('2026-12-07T10:00:00.000Z');
  for (let i = 0; i < HEALTH_HISTORY_LIMIT + 5; i += 1) {
    await recordHealthEvent(store as unknown as EtcdStore, keys, { node: `node-${(i % 3) + 1}`, healthy: i % 2 === 0, failing: [], time: new Date(base + i * 1000).toISOString() });
  }
  const events = await listHealthEvents(store as unknown as EtcdStore, keys);
  assert.equal(events.length, HEALTH_HISTORY_LIMIT);
  assert.equal(events[0]!.time, new Date(base + 5000).toISOString());
  assert.equal(events.at(-1)!.time, new Date(base + (HEALTH_HISTORY_LIMIT + 4) * 1000).toISOString());
  // A damaged record is left out, not thrown.
  store.values.set(keys.healthEvent(base + 999_999, 'node-9', 1), '{not json');
  assert.equal((await listHealthEvents(store as unknown as EtcdStore, keys)).length, HEALTH_HISTORY_LIMIT);
});

test('vipd events prints moves and health verdicts in time order, as lines and as JSON', () => {
  const moves: MoveEvent[] = [
    { from: null, to: 'node-1', reason: 'first holder elected', term: 5, time: '2026-12-07T10:00:00.000Z' },
    { from: 'node-1', to: 'node-2', reason: 'health: check api failing: HTTP 503; planned move to node-2', term: 9, time: '2026-12-07T10:05:03.000Z' },
  ];
  const health: HealthEvent[] = [
    { node: 'node-1', healthy: true, failing: [], time: '2026-12-07T10:20:00.000Z' },
    { node: 'node-1', healthy: false, failing: [{ check: 'api', detail: 'HTTP 503' }], time: '2026-12-07T10:05:03.000Z' },
  ];
  const merged = mergeHistory(moves, health);
  assert.deepEqual(merged.map(formatChangeLine), [
    '2026-12-07T10:00:00.000Z  move   node-1 took the VIP (term 5): first holder elected',
    '2026-12-07T10:05:03.000Z  health node-1 is unhealthy: check api failing (HTTP 503)',
    '2026-12-07T10:05:03.000Z  move   node-1 -> node-2 (term 9): health: check api failing: HTTP 503; planned move to node-2',
    '2026-12-07T10:20:00.000Z  health node-1 is healthy: every check passes',
  ]);
  assert.deepEqual(JSON.parse(changeAsJson(merged[1]!)), { type: 'health', node: 'node-1', healthy: false, failing: [{ check: 'api', detail: 'HTTP 503' }], time: '2026-12-07T10:05:03.000Z' });
});

test('a passing check that starts failing, or recovers below fall, is published without a verdict change', () => {
  const wavering: boolean[] = [];
  const verdicts: boolean[] = [];
  const health = new HealthMonitor({
    node: 'node-1',
    checks: apiCheck(),
    onChange: (record) => verdicts.push(record.healthy),
    onWavering: (record) => wavering.push(record.checks[0]!.consecutiveFailures > 0),
  });
  for (const result of [ok, ok, ok, bad, bad, ok, ok, bad, ok, bad, bad, bad, bad, ok]) health.feed('api', result);
  // Risen (a verdict); then failing twice and back (two wavers); once more; then fall reached (a verdict, no waver), and below rise nothing.
  assert.deepEqual(verdicts, [true, false]);
  assert.deepEqual(wavering, [true, false, true, false, true]);
});
