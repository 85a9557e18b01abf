import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createApiWorld, type ApiWorld } from './fakes';
import type { ClusterChange } from '../../src/status/changes';

const JSON_HEADERS = { 'content-type': 'application/json' };

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

describe('cordon, uncordon and priority through the API (issue 14, fastify.inject)', () => {
  let world: ApiWorld;
  const streamed: ClusterChange[] = [];

  before(async () => {
    world = await createApiWorld();
    world.backend.subscribe((change) => streamed.push(change));
  });
  after(async () => {
    await world.app.close();
    world.certificates.stop();
  });

  const call = (method: 'POST' | 'DELETE' | 'PUT', url: string, body?: unknown, token = world.adminToken) =>
    world.app.inject({ method, url, headers: { ...bearer(token), ...(body === undefined ? {} : JSON_HEADERS) }, ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
  const admin = async () => (await world.app.inject({ method: 'GET', url: '/v1/events', headers: bearer(world.readToken) })).json().admin as Array<{ node: string; action: string; message: string }>;
  const node = async (name: string) =>
    ((await world.app.inject({ method: 'GET', url: '/v1/nodes', headers: bearer(world.readToken) })).json().nodes as Array<{ name: string; priority: number | null; cordon: { strict: boolean; by: string; reason: string | null } | null }>).find(
      (entry) => entry.name === name,
    );

  test('cordon, strict cordon, uncordon and priority: each answers the node as it is now and is an admin event', async () => {
    const cordoned = await call('POST', '/v1/nodes/node-1/cordon', { reason: 'kernel upgrade' });
    assert.equal(cordoned.statusCode, 200);
    const tokenId = world.adminToken.replace(/^vipd_/, '').split('.')[0];
    const answer = cordoned.json<{ cordon: { since: string } }>();
    assert.match(answer.cordon.since, /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual({ ...answer, cordon: { ...answer.cordon, since: 'x' } }, {
      node: 'node-1',
      changed: true,
      priority: null,
      cordon: { strict: false, by: `token ${tokenId} through the API on node-2`, reason: 'kernel upgrade', since: 'x' },
    });
    assert.equal((await node('node-1'))?.cordon?.reason, 'kernel upgrade');

    const again = await call('POST', '/v1/nodes/node-1/cordon', {});
    assert.deepEqual([again.statusCode, again.json().changed], [200, false], 'cordoned so already: no change, no event');

    const strict = await call('POST', '/v1/nodes/node-1/cordon', { strict: true });
    assert.deepEqual([strict.statusCode, strict.json().changed, strict.json().cordon.strict], [200, true, true]);
    assert.equal((await node('node-1'))?.cordon?.strict, true);

    const uncordoned = await call('DELETE', '/v1/nodes/node-1/cordon');
    assert.deepEqual([uncordoned.statusCode, uncordoned.json().changed, uncordoned.json().cordon], [200, true, null]);
    assert.equal((await node('node-1'))?.cordon, null);
    const twice = await call('DELETE', '/v1/nodes/node-1/cordon');
    assert.deepEqual([twice.statusCode, twice.json().changed], [200, false]);

    const priority = await call('PUT', '/v1/nodes/node-3/priority', { priority: 250 });
    assert.deepEqual([priority.statusCode, priority.json().priority, priority.json().changed], [200, 250, true]);
    assert.equal((await node('node-3'))?.priority, 250);
    const zero = await call('PUT', '/v1/nodes/node-3/priority', { priority: 0 });
    assert.deepEqual([zero.statusCode, zero.json().priority], [200, 0], '0 and 1000 are the bounds, both allowed');

    const events = await admin();
    assert.deepEqual(
      events.map((event) => [event.node, event.action]),
      [
        ['node-1', 'cordon'],
        ['node-1', 'cordon'],
        ['node-1', 'uncordon'],
        ['node-3', 'priority'],
        ['node-3', 'priority'],
      ],
    );
    assert.match(events[0]!.message, /^cordoned by token \S+ through the API on node-2: kernel upgrade$/);
    assert.match(events[1]!.message, /^cordoned \(strict\) by token /);
    assert.match(events[3]!.message, /^priority set to 250 by token /);
    assert.deepEqual(
      streamed.filter((change) => change.type === 'admin').map((change) => change.event),
      events,
      'the live stream carries the same events',
    );
  });

  test('a read token gets 403 on every change, and nothing changes', async () => {
    const before = { events: await admin(), node: await node('node-2') };
    const attempts = [
      await call('POST', '/v1/nodes/node-2/cordon', { strict: true }, world.readToken),
      await call('DELETE', '/v1/nodes/node-2/cordon', undefined, world.readToken),
      await call('PUT', '/v1/nodes/node-2/priority', { priority: 900 }, world.readToken),
    ];
    for (const response of attempts) {
      assert.equal(response.statusCode, 403);
      assert.equal(response.json().error, 'Forbidden');
    }
    assert.deepEqual({ events: await admin(), node: await node('node-2') }, before);
  });

  test('bad bodies are 400s naming the field, and change nothing', async () => {
    const before = await admin();
    const cases: Array<[string, 'POST' | 'PUT', unknown, RegExp]> = [
      ['/v1/nodes/node-2/priority', 'PUT', { priority: -1 }, /^priority: must be a whole number from 0 to 1000/],
      ['/v1/nodes/node-2/priority', 'PUT', { priority: 1001 }, /^priority: must be a whole number from 0 to 1000/],
      ['/v1/nodes/node-2/priority', 'PUT', { priority: 'x' }, /^priority: must be a whole number from 0 to 1000/],
      ['/v1/nodes/node-2/priority', 'PUT', { priority: 1.5 }, /^priority: must be a whole number from 0 to 1000/],
      ['/v1/nodes/node-2/priority', 'PUT', {}, /^priority: is required/],
      ['/v1/nodes/node-2/priority', 'PUT', { priority: 5, weight: 1 }, /^weight: unknown field/],
      ['/v1/nodes/node-2/cordon', 'POST', { strict: 'yes' }, /^strict: must be true or false/],
      ['/v1/nodes/node-2/cordon', 'POST', { strict: true, force: true }, /^force: unknown field/],
      ['/v1/nodes/node-2/cordon', 'POST', { reason: 'two\nlines' }, /^reason: must be one line of at most 200 characters$/],
      ['/v1/nodes/node-2/cordon', 'POST', { reason: 'x'.repeat(201) }, /^reason: /],
      ['/v1/nodes/Node_2/cordon', 'POST', {}, /^name: must be a node name/],
    ];
    for (const [url, method, body, message] of cases) {
      const response = await call(method, url, body);
      assert.equal(response.statusCode, 400, `${method} ${url} ${JSON.stringify(body)}`);
      assert.deepEqual(Object.keys(response.json()), ['error', 'message']);
      assert.match(response.json().message, message, `${method} ${url} ${JSON.stringify(body)}`);
    }
    assert.deepEqual(await admin(), before);
    assert.deepEqual([(await node('node-2'))?.cordon, (await node('node-2'))?.priority], [null, null]);
  });

  test('an unknown node is a 404 naming it and the registered nodes', async () => {
    const before = await admin();
    for (const [method, url, body] of [
      ['POST', '/v1/nodes/node-9/cordon', {}],
      ['DELETE', '/v1/nodes/node-9/cordon', undefined],
      ['PUT', '/v1/nodes/node-9/priority', { priority: 1 }],
    ] as const) {
      const response = await call(method, url, body);
      assert.equal(response.statusCode, 404, `${method} ${url}`);
      assert.equal(response.json().error, 'Not Found');
      assert.equal(response.json().message, 'unknown node "node-9" (registered nodes: node-1, node-2, node-3)');
    }
    assert.deepEqual(await admin(), before);
  });
});
