import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../lab/shell';
import { listenApiServer } from '../../src/api/server';
import { ApiClient } from '../../src/cli/api-client';
import { ApiChangeFeed } from '../../src/cli/change-feed';
import { parseSseFrames } from '../../src/cli/sse';
import type { ClusterChange } from '../../src/status/changes';
import { changeAsJson, formatChangeLine, formatStatusLine } from '../../src/status/change-text';
import { describeManagementAddress } from '../../src/status/management-address';
import { createApiWorld, type ApiWorld } from './fakes';

test('SSE frames: types, multi-line data, comments, CRLF, and a frame cut in two', () => {
  const first = parseSseFrames('retry: 3000\n\n: heartbeat\n\nevent: move\ndata: {"a":1}\n\ndata: one\r\ndata:two\r\n\r\nevent: node\ndata: {"b"');
  assert.deepEqual(first.frames, [
    { type: 'move', data: '{"a":1}' },
    { type: 'message', data: 'one\ntwo' },
  ]);
  assert.equal(first.rest, 'event: node\ndata: {"b"');
  const second = parseSseFrames(`${first.rest}:2}\n\r`);
  assert.deepEqual(second.frames, []);
  assert.equal(second.rest, 'event: node\ndata: {"b":2}\n\r', 'a CR at the end waits for its LF');
  assert.deepEqual(parseSseFrames(`${second.rest}\n`).frames, [{ type: 'node', data: '{"b":2}' }]);
});

test('change lines: one per move, node and lease, with times; JSON lines carry the type first', () => {
  const move: ClusterChange = { type: 'move', event: { from: 'node-1', to: 'node-2', reason: 'planned move to node-2', term: 25, time: '2026-12-07T14:00:00.000Z' } };
  const node: ClusterChange = { type: 'node', event: { node: 'node-3', healthy: false, time: '2026-12-07T14:00:01.000Z' } };
  const lease: ClusterChange = {
    type: 'lease',
    event: {
      holder: 'node-2', state: 'bound', reason: null, leasedIP: '192.0.2.61', leaseSeconds: 600, boundAt: '2026-12-07T14:00:02.000Z',
      renewAt: null, rebindAt: null, expiresAt: '2026-12-07T14:10:02.000Z', updatedAt: '2026-12-07T14:00:02.000Z', time: '2026-12-07T14:00:02.000Z',
    },
  };
  assert.equal(formatChangeLine(move), '2026-12-07T14:00:00.000Z  move   node-1 -> node-2 (term 25): planned move to node-2');
  assert.equal(formatChangeLine(node), '2026-12-07T14:00:01.000Z  node   node-3 stopped (unhealthy)');
  assert.equal(formatChangeLine(lease), '2026-12-07T14:00:02.000Z  lease  192.0.2.61 bound by node-2 for 600s, expires 2026-12-07T14:10:02.000Z');
  assert.deepEqual(Object.keys(JSON.parse(changeAsJson(node))), ['type', 'node', 'healthy', 'time']);

  const view = describeManagementAddress({
    cluster: 'demo', address: '192.0.2.10', mode: 'static', interface: 'mgmt-br',
    leader: { node: 'node-2', ip: '192.0.2.12', mac: '8c:dc:d4:b5:f0:02', since: '2026-12-07T14:00:00.000Z', term: 25 },
  });
  assert.equal(
    formatStatusLine(view, [{ name: 'node-1', healthy: true }, { name: 'node-2', healthy: true }, { name: 'node-3', healthy: false }], 'T'),
    'T  held by node-2 (192.0.2.12, 8c:dc:d4:b5:f0:02), term 25; 2 of 3 nodes healthy (down: node-3)',
  );
});

describe('the CLI\'s change feed through the API', () => {
  let world: ApiWorld;
  let server: string;
  before(async () => {
    world = await createApiWorld({ heartbeatMs: 100 });
    server = `https://127.0.0.1:${(await listenApiServer(world.app, { host: '127.0.0.1', port: 0 })).port}`;
  });
  after(async () => {
    await world.app.close();
    world.certificates.stop();
  });

  test('follows moves, node health and leases, and after a dropped connection delivers what it missed, once', async () => {
    const feed = new ApiChangeFeed(new ApiClient({ server, token: world.readToken, ca: world.ca.certificatePem }));
    // The history holds the health verdicts beside the moves (issue 13), in time order.
    world.backend.healthHistory = [{ node: 'node-3', healthy: false, failing: [{ check: 'api', detail: 'HTTP 503' }], time: new Date(Date.now() - 3600_000).toISOString() }];
    const history = await feed.history();
    assert.equal(history.length, world.backend.history.length + 1);
    assert.deepEqual(history.map((change) => change.type), ['move', 'health', 'move']);
    assert.deepEqual(history[1]!.event, world.backend.healthHistory[0]);
    const seen: ClusterChange[] = [];
    let resyncs = 0;
    const stopped = new AbortController();
    const following = feed.follow((change) => seen.push(change), () => resyncs++, stopped.signal);
    try {
      await waitFor('the stream to open', () => world.backend.listeners.size === 1, 5000, 10);
      const moved = world.backend.moveTo('node-2', 'lease expired: node-1 stopped renewing');
      world.backend.emit({ type: 'node', event: { node: 'node-1', healthy: false, time: new Date().toISOString() } });
      await waitFor('the move and the node change', () => seen.length === 2, 5000, 10);
      assert.deepEqual(seen.map((change) => change.type), ['move', 'node'], 'the history is not delivered again');

      // What a move does to a stream through the VIP: the old holder's connections go.
      world.app.server.closeAllConnections();
      await waitFor('the stream to be gone', () => world.backend.listeners.size === 0, 5000, 10);
      const missed = world.backend.moveTo('node-1', 'planned move to node-1');
      await waitFor('the reconnection and the missed move', () => resyncs === 1 && seen.some((change) => change.type === 'move' && change.event.term === missed.term), 10_000, 10);
      const moves = seen.filter((change) => change.type === 'move').map((change) => change.event.term);
      assert.deepEqual(moves, [moved.term, missed.term], 'each move once, in order');
    } finally {
      stopped.abort();
      await following;
    }
    await waitFor('the subscription to end', () => world.backend.listeners.size === 0, 5000, 10);
  });
});
