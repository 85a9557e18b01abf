import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { ClusterCa } from '../../src/security/ca';
import { MemoryKeyValue } from '../../src/store/kv';
import { UNAUTHORIZED_MESSAGE } from '../../src/api/auth';
import { listenApiServer } from '../../src/api/server';
import { ApiClient, ApiError } from '../../src/cli/api-client';
import { createApiWorld, FQDN, VIP, type ApiWorld } from './fakes';
import { waitFor } from '../../lab/shell';

const JSON_HEADERS = { 'content-type': 'application/json' };

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** Certificates to upload, issued by a CA that is not the cluster's (as a user's would be). */
interface UploadKit {
  good: { certificate: string; privateKey: string };
  noVipSan: { certificate: string; privateKey: string };
  otherFqdn: { certificate: string; privateKey: string };
  expired: { certificate: string; privateKey: string };
  notYetValid: { certificate: string; privateKey: string };
  otherCaPem: string;
  leafOnly: string;
  issuerPem: string;
}

async function uploadKit(): Promise<UploadKit> {
  const issuer = await ClusterCa.loadOrCreate(new MemoryKeyValue(), 'ca', { cluster: 'corp' });
  const other = await ClusterCa.loadOrCreate(new MemoryKeyValue(), 'ca', { cluster: 'elsewhere' });
  const issue = async (vip: string, fqdn: string, now?: Date, validityDays?: number) => {
    const issued = await issuer.issueServingCertificate({
      nodeName: 'mgmt',
      nodeIp: vip,
      vip,
      fqdn,
      ...(now ? { now } : {}),
      ...(validityDays ? { validityDays } : {}),
    });
    return { certificate: issued.chain, privateKey: issued.privateKey };
  };
  const good = await issue(VIP, FQDN);
  const leafOnly = new X509Certificate(good.certificate).toString();
  return {
    good,
    noVipSan: await issue('192.0.2.99', FQDN),
    otherFqdn: await issue(VIP, 'other.example.test'),
    expired: await issue(VIP, FQDN, new Date(Date.now() - 400 * 86_400_000), 30),
    notYetValid: await issue(VIP, FQDN, new Date(Date.now() + 30 * 86_400_000)),
    otherCaPem: other.certificatePem,
    leafOnly,
    issuerPem: issuer.certificatePem,
  };
}

describe('HTTPS API (fastify.inject)', () => {
  let world: ApiWorld;
  let kit: UploadKit;

  before(async () => {
    world = await createApiWorld();
    kit = await uploadKit();
  });
  after(async () => {
    await world.app.close();
    world.certificates.stop();
  });

  test('GET /ping needs no token and carries the security headers', async () => {
    const response = await world.app.inject({ method: 'GET', url: '/ping' });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { status: 'ok' });
    assert.equal(response.headers['x-content-type-options'], 'nosniff');
    assert.match(String(response.headers['strict-transport-security']), /max-age=/);
  });

  test('GET /v1/management-address is the status object with the CA fingerprint, nothing else', async () => {
    const response = await world.app.inject({ method: 'GET', url: '/v1/management-address', headers: bearer(world.readToken) });
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['cache-control'], 'no-store');
    const body = response.json();
    assert.equal(body.kind, 'ManagementAddress');
    assert.equal(body.spec.address, VIP);
    assert.equal(body.status.holder, 'node-1');
    assert.equal(body.status.hwaddr, '8c:dc:d4:b5:f0:01');
    assert.equal(body.metadata.annotations['kube-vip.io/vipHost'], 'node-1');
    assert.equal(body.metadata.annotations['kube-vip.io/requestedIP'], VIP);
    assert.equal(body.status.caFingerprint, world.ca.caFingerprint());
    assert.equal(body.status.certificateWarning, null);
    assert.equal('internalSecret' in body.status, false, 'fields outside the response schema are dropped');
  });

  test('GET /v1/nodes, /v1/about and /v1/events', async () => {
    const nodes = await world.app.inject({ method: 'GET', url: '/v1/nodes', headers: bearer(world.readToken) });
    assert.equal(nodes.statusCode, 200);
    assert.deepEqual(
      nodes.json().nodes.map((node: { name: string; healthy: boolean; holdsVip: boolean }) => [node.name, node.healthy, node.holdsVip]),
      [
        ['node-1', true, true],
        ['node-2', true, false],
        ['node-3', false, false],
      ],
    );
    const about = await world.app.inject({ method: 'GET', url: '/v1/about', headers: bearer(world.readToken) });
    assert.deepEqual(about.json(), { node: { name: 'node-2', ip: '192.0.2.12' }, fqdn: FQDN });
    const events = await world.app.inject({ method: 'GET', url: '/v1/events', headers: bearer(world.readToken) });
    assert.equal(events.statusCode, 200);
    assert.equal(events.json().events.length, world.backend.history.length);
    const limited = await world.app.inject({ method: 'GET', url: '/v1/events?limit=1', headers: bearer(world.readToken) });
    assert.deepEqual(limited.json().events, world.backend.history.slice(-1));
  });

  test('bad query strings are 400s naming the parameter', async () => {
    const bad = await world.app.inject({ method: 'GET', url: '/v1/events?limit=lots', headers: bearer(world.readToken) });
    assert.equal(bad.statusCode, 400);
    assert.deepEqual(Object.keys(bad.json()), ['error', 'message']);
    assert.match(bad.json().message, /^limit: must be a whole number from 1 to 1000$/);
    const unknown = await world.app.inject({ method: 'GET', url: '/v1/nodes?verbose=1', headers: bearer(world.readToken) });
    assert.equal(unknown.statusCode, 400);
    assert.match(unknown.json().message, /^verbose: unknown field/);
  });

  test('a missing, malformed, unknown, wrong or expired token gets the same 401', async () => {
    const [id] = world.readToken.replace(/^vipd_/, '').split('.');
    const expired = await (async () => {
      world.clock.offsetMs = -48 * 3600_000;
      const created = await world.tokens.create({ role: 'admin' });
      world.clock.offsetMs = 0;
      return created.token;
    })();
    const attempts: Array<Record<string, string>> = [
      {},
      { authorization: 'Basic dXNlcjpwYXNz' },
      bearer('not-a-token'),
      bearer(`vipd_0000000000000000.${'A'.repeat(43)}`),
      bearer(`vipd_${id}.${'B'.repeat(43)}`),
      bearer(expired),
    ];
    for (const headers of attempts) {
      const response = await world.app.inject({ method: 'GET', url: '/v1/management-address', headers });
      assert.equal(response.statusCode, 401, JSON.stringify(headers));
      assert.deepEqual(response.json(), { error: 'Unauthorized', message: UNAUTHORIZED_MESSAGE });
      assert.equal(response.headers['www-authenticate'], 'Bearer realm="vipd"');
    }
  });

  test('a read token may read but not move or upload (403)', async () => {
    const move = await world.app.inject({
      method: 'POST',
      url: '/v1/management-address/move',
      headers: { ...bearer(world.readToken), ...JSON_HEADERS },
      payload: { to: 'node-2' },
    });
    assert.equal(move.statusCode, 403);
    assert.deepEqual(move.json(), { error: 'Forbidden', message: 'this endpoint needs a token with the admin role' });
    const upload = await world.app.inject({
      method: 'PUT',
      url: '/v1/settings/ssl-certificates',
      headers: { ...bearer(world.readToken), ...JSON_HEADERS },
      payload: kit.good,
    });
    assert.equal(upload.statusCode, 403);
    assert.deepEqual(world.backend.moves, []);
  });

  test('POST /v1/management-address/move: bad bodies are JSON 400s naming the field', async () => {
    const post = (payload: string, headers: Record<string, string> = JSON_HEADERS) =>
      world.app.inject({ method: 'POST', url: '/v1/management-address/move', headers: { ...bearer(world.adminToken), ...headers }, payload });
    const cases: Array<[string, RegExp, Record<string, string>?]> = [
      ['{"to": "node-2"', /^the request body is not valid JSON$/],
      ['{"to": 5}', /^to: must be a node name/],
      ['{"to": "Node_2!"}', /^to: must be a node name/],
      ['{"to": "node-2", "force": true}', /^force: unknown field \(allowed here: to\)$/],
      ['{}', /^to: is required$/],
      ['[]', /^body: must be a JSON object$/],
      ['to=node-2', /content-type: application\/json/, { 'content-type': 'text/plain' }],
    ];
    for (const [payload, message, headers] of cases) {
      const response = await post(payload, headers);
      assert.ok([400, 415].includes(response.statusCode), `${payload}: ${response.statusCode}`);
      assert.deepEqual(Object.keys(response.json()), ['error', 'message']);
      assert.match(response.json().message, message, payload);
      assert.ok(!response.body.includes('Node_2!'), 'request values are not echoed');
    }
    assert.deepEqual(world.backend.moves, []);
  });

  test('an oversized body is a JSON 413, before anything is parsed', async () => {
    const response = await world.app.inject({
      method: 'POST',
      url: '/v1/management-address/move',
      headers: { ...bearer(world.adminToken), ...JSON_HEADERS },
      payload: JSON.stringify({ to: 'x'.repeat(70 * 1024) }),
    });
    assert.equal(response.statusCode, 413);
    assert.deepEqual(response.json(), { error: 'Payload Too Large', message: 'the request body is larger than 65536 bytes' });
  });

  test('health (issue 13): /v1/nodes has each node\'s checks; status lists node health and says the holder holds while unhealthy; a move to a failing node is 409', async () => {
    world.backend.setCheck('node-2', 'HTTP 503');
    try {
      const nodes = (await world.app.inject({ method: 'GET', url: '/v1/nodes', headers: bearer(world.readToken) })).json().nodes as Array<{ name: string; health: string; checks: Array<{ name: string; passing: boolean; lastResult: { detail: string } }> }>;
      assert.deepEqual(nodes.map((node) => [node.name, node.health, node.checks.map((check) => [check.name, check.passing, check.lastResult.detail])]), [
        ['node-1', 'passing', [['api', true, 'HTTP 200']]],
        ['node-2', 'failing', [['api', false, 'HTTP 503']]],
        ['node-3', 'unknown', []],
      ]);
      const move = await world.app.inject({ method: 'POST', url: '/v1/management-address/move', headers: { ...bearer(world.adminToken), ...JSON_HEADERS }, payload: { to: 'node-2' } });
      assert.equal(move.statusCode, 409);
      assert.equal(move.json().message, 'node "node-2" is unhealthy: check api failing');
      world.backend.setCheck('node-1', 'connection refused');
      const status = (await world.app.inject({ method: 'GET', url: '/v1/management-address', headers: bearer(world.readToken) })).json();
      assert.deepEqual(status.status.nodes.map((node: { name: string; health: string }) => [node.name, node.health]), [['node-1', 'failing'], ['node-2', 'failing'], ['node-3', 'unknown']]);
      assert.equal(status.status.message, 'held by node-1; held while unhealthy (check api failing (connection refused)): no running node is healthy to move it to');
    } finally {
      world.backend.setCheck('node-1', null);
      world.backend.setCheck('node-2', null);
    }
  });

  test('a move to an unknown or unhealthy node is 409 with the reason', async () => {
    for (const [to, reason] of [
      ['node-9', /unknown node "node-9"/],
      ['node-3', /node "node-3" is not healthy/],
    ] as const) {
      const response = await world.app.inject({
        method: 'POST',
        url: '/v1/management-address/move',
        headers: { ...bearer(world.adminToken), ...JSON_HEADERS },
        payload: { to },
      });
      assert.equal(response.statusCode, 409);
      assert.equal(response.json().error, 'Conflict');
      assert.match(response.json().message, reason);
    }
  });

  test('a planned move is answered 202 with an id before the holder is asked; a move to the holder is 200 done', async () => {
    const post = (to: string) => world.app.inject({
      method: 'POST',
      url: '/v1/management-address/move',
      headers: { ...bearer(world.adminToken), ...JSON_HEADERS },
      payload: { to },
    });
    const response = await post('node-2');
    assert.equal(response.statusCode, 202);
    const answer = response.json();
    assert.deepEqual(Object.keys(answer).sort(), ['from', 'id', 'requestedAt', 'state', 'term', 'to']);
    assert.deepEqual([answer.state, answer.from, answer.to, answer.term], ['accepted', 'node-1', 'node-2', 7]);
    // The holder is asked once the answer has left ('finish'), not before.
    await waitFor('the move to be submitted', () => world.backend.moves.length === 1, 5000, 5);
    assert.deepEqual(world.backend.moves, ['node-2']);
    assert.match(world.backend.requesters[0] ?? '', /^token [0-9a-f]+ through the API on node-2$/);
    assert.equal(world.backend.history.at(-1)?.reason, `planned move to node-2 requested by ${world.backend.requesters[0]} (move ${answer.id})`);

    const again = await post('node-2');
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().state, 'done');
    assert.deepEqual(world.backend.moves, ['node-2'], 'nothing is asked of a holder that is the target');
    world.backend.moveTo('node-1', 'test reset');
  });

  test('unknown routes are JSON 404s', async () => {
    const response = await world.app.inject({ method: 'GET', url: '/v1/nope?x=1', headers: bearer(world.readToken) });
    assert.equal(response.statusCode, 404);
    assert.deepEqual(response.json(), { error: 'Not Found', message: 'no endpoint GET /v1/nope' });
    const wrongMethod = await world.app.inject({ method: 'DELETE', url: '/v1/nodes' });
    assert.equal(wrongMethod.statusCode, 404);
    assert.equal(wrongMethod.json().error, 'Not Found');
    const badUrl = await world.app.inject({ method: 'GET', url: '/v1/%zz' });
    assert.equal(badUrl.statusCode, 400);
    assert.deepEqual(badUrl.json(), { error: 'Bad Request', message: 'the URL is not valid' });
  });

  test('a route that does not say who may call it needs an admin token', async () => {
    const fresh = await createApiWorld();
    fresh.app.get('/v1/forgotten', async () => ({ ok: true }));
    const anonymous = await fresh.app.inject({ method: 'GET', url: '/v1/forgotten' });
    const reader = await fresh.app.inject({ method: 'GET', url: '/v1/forgotten', headers: bearer(fresh.readToken) });
    const admin = await fresh.app.inject({ method: 'GET', url: '/v1/forgotten', headers: bearer(fresh.adminToken) });
    assert.deepEqual([anonymous.statusCode, reader.statusCode, admin.statusCode], [401, 403, 200]);
    await fresh.app.close();
    fresh.certificates.stop();
  });

  describe('PUT /v1/settings/ssl-certificates', () => {
    const put = (payload: unknown) =>
      world.app.inject({
        method: 'PUT',
        url: '/v1/settings/ssl-certificates',
        headers: { ...bearer(world.adminToken), ...JSON_HEADERS },
        payload: JSON.stringify(payload),
      });

    test('rejects bad input with 400 naming the field, never echoing the key', async () => {
      const cases: Array<[unknown, RegExp]> = [
        [{ certificate: 'hello', privateKey: kit.good.privateKey }, /^certificate: must hold a PEM certificate/],
        [
          { certificate: '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----', privateKey: kit.good.privateKey },
          /^certificate: certificate 1 is not a valid PEM certificate$/,
        ],
        [{ certificate: kit.good.certificate, privateKey: 'not a key' }, /^privateKey: must be an unencrypted PEM private key/],
        [{ certificate: kit.good.certificate, privateKey: kit.otherFqdn.privateKey }, /^privateKey: does not match the certificate$/],
        [kit.expired, /^certificate: expired on \d{4}-/],
        [kit.notYetValid, /^certificate: is not valid yet/],
        [kit.otherFqdn, /^certificate: does not cover the cluster FQDN mgmt\.example\.test \(it lists other\.example\.test, mgmt\)$/],
        [{ certificate: kit.leafOnly, privateKey: kit.good.privateKey, caChain: kit.otherCaPem }, /^caChain: does not contain the issuer/],
        [{ certificate: kit.good.certificate }, /^privateKey: is required$/],
        [{ certificate: kit.good.certificate, privateKey: 12345 }, /^privateKey: /],
        [{ ...kit.good, password: 'x' }, /^password: unknown field/],
      ];
      for (const [payload, message] of cases) {
        const response = await put(payload);
        assert.equal(response.statusCode, 400, String(message));
        assert.deepEqual(Object.keys(response.json()), ['error', 'message']);
        assert.match(response.json().message, message);
        assert.ok(!response.body.includes('PRIVATE KEY') && !response.body.includes('12345'), 'no secret in the answer');
      }
      assert.equal(world.certificates.status().source, 'generated');
    });

    test('a certificate without the VIP as IP SAN is accepted with a warning', async () => {
      const response = await put(kit.noVipSan);
      assert.equal(response.statusCode, 200);
      const body = response.json();
      assert.match(body.warning, /does not list the VIP 192\.0\.2\.10 as an IP SAN/);
      assert.equal(body.certificate.warning, body.warning);
      assert.equal(body.certificate.source, 'uploaded');
      assert.ok(!response.body.includes('PRIVATE KEY'));
      assert.equal(world.certificates.status().warning, body.warning, 'the warning is available for status');
    });

    test('a good certificate with its CA chain is accepted and served', async () => {
      const response = await put({ certificate: kit.leafOnly, privateKey: kit.good.privateKey, caChain: kit.issuerPem });
      assert.equal(response.statusCode, 200);
      const body = response.json();
      assert.equal(body.warning, null);
      assert.deepEqual(body.certificate.ipAddresses, [VIP]);
      assert.ok(body.certificate.dnsNames.includes(FQDN));
      assert.equal(body.certificate.fingerprint, new X509Certificate(kit.leafOnly).fingerprint256);
      assert.equal(world.certificates.status().fingerprint, body.certificate.fingerprint);
    });
  });
});

/** Reads an SSE response until `until` is satisfied by the text so far. */
function readStream(port: number, headers: Record<string, string>, ca: string) {
  let text = '';
  let statusCode = 0;
  const waiters: Array<() => void> = [];
  const request = httpsRequest({ host: '127.0.0.1', port, path: '/v1/events', headers, ca }, (response) => {
    statusCode = response.statusCode ?? 0;
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      text += chunk;
      for (const wake of waiters.splice(0)) wake();
    });
    response.on('end', () => {
      text += '\n<end>';
      for (const wake of waiters.splice(0)) wake();
    });
  });
  request.end();
  return {
    get statusCode() {
      return statusCode;
    },
    get text() {
      return text;
    },
    async until(predicate: (text: string) => boolean, what: string): Promise<void> {
      const deadline = Date.now() + 5000;
      while (!predicate(text)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got:\n${text}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 100);
        });
      }
    },
    close: () => request.destroy(),
  };
}

describe('HTTPS API on a real loopback socket', () => {
  let world: ApiWorld;
  let port: number;

  before(async () => {
    world = await createApiWorld({ heartbeatMs: 100 });
    port = (await listenApiServer(world.app, { host: '127.0.0.1', port: 0 })).port;
  });
  after(async () => {
    await world.app.close();
    world.certificates.stop();
  });

  test('GET /v1/events with Accept: text/event-stream streams the history, then live events, with heartbeats', async () => {
    const stream = readStream(port, { accept: 'text/event-stream', ...bearer(world.readToken) }, world.ca.certificatePem);
    await stream.until((text) => (text.match(/^event: move$/gm) ?? []).length >= world.backend.history.length, 'the history');
    assert.equal(stream.statusCode, 200);
    assert.match(stream.text, /^retry: 3000$/m);
    assert.equal(world.backend.listeners.size, 1);
    const event = world.backend.moveTo('node-2', 'lease expired: node-1 stopped renewing');
    await stream.until((text) => text.includes(JSON.stringify(event)), 'the live event');
    await stream.until((text) => text.includes(': heartbeat'), 'a heartbeat');
    const frames = stream.text.split('\n\n').filter((frame) => frame.startsWith('event: move'));
    assert.deepEqual(
      frames.map((frame) => JSON.parse(frame.split('\n')[1]!.replace(/^data: /, ''))),
      world.backend.history,
      'history first, then the new event, each once',
    );
    stream.close();
    const deadline = Date.now() + 2000;
    while (world.backend.listeners.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(world.backend.listeners.size, 0, 'the subscription ends with the connection');
  });

  test('the event stream carries health changes as their own event type', async () => {
    const stream = readStream(port, { accept: 'text/event-stream', ...bearer(world.readToken) }, world.ca.certificatePem);
    await stream.until((text) => (text.match(/^event: move$/gm) ?? []).length >= world.backend.history.length, 'the history');
    world.backend.setCheck('node-2', 'HTTP 503');
    await stream.until((text) => /^event: health$/m.test(text), 'the health event');
    const frame = stream.text.split('\n\n').find((candidate) => candidate.startsWith('event: health'))!;
    const event = JSON.parse(frame.split('\n')[1]!.replace(/^data: /, ''));
    assert.deepEqual([event.node, event.healthy, event.failing], ['node-2', false, [{ check: 'api', detail: 'HTTP 503' }]]);
    world.backend.setCheck('node-2', null);
    stream.close();
  });

  test('the event stream needs a token too', async () => {
    const stream = readStream(port, { accept: 'text/event-stream' }, world.ca.certificatePem);
    await stream.until((text) => text.includes('<end>'), 'the answer');
    assert.equal(stream.statusCode, 401);
    assert.match(stream.text, /"error":"Unauthorized"/);
    assert.equal(world.backend.listeners.size, 0);
  });

  test('the API client pins the CA by file or by fingerprint, and refuses anything else', async () => {
    const server = `https://127.0.0.1:${port}`;
    const byCa = new ApiClient({ server, token: world.readToken, ca: world.ca.certificatePem });
    assert.equal((await byCa.get<{ status: { holder: string } }>('/v1/management-address')).status.holder, world.backend.holder);
    const byFingerprint = new ApiClient({ server, token: world.readToken, caFingerprint: world.ca.caFingerprint().toLowerCase() });
    assert.equal((await byFingerprint.get<{ nodes: unknown[] }>('/v1/nodes')).nodes.length, 3);

    const other = await ClusterCa.loadOrCreate(new MemoryKeyValue(), 'ca', { cluster: 'other' });
    await assert.rejects(new ApiClient({ server, token: world.readToken, ca: other.certificatePem }).get('/ping'), /self-signed|unable to verify|certificate/i);
    await assert.rejects(
      new ApiClient({ server, token: world.readToken, caFingerprint: other.caFingerprint() }).get('/ping'),
      /does not present a CA with fingerprint/,
    );
    await assert.rejects(
      new ApiClient({ server, token: 'vipd_wrong', ca: world.ca.certificatePem }).get('/v1/nodes'),
      (error: unknown) => error instanceof ApiError && error.status === 401 && error.message === UNAUTHORIZED_MESSAGE,
    );
    assert.throws(() => new ApiClient({ server }), /--ca: is required/);
    assert.throws(() => new ApiClient({ server: 'http://127.0.0.1', ca: 'x' }), /--server: must be an https:\/\/ URL/);
  });

  test('an uploaded certificate is served on the next connection, without a restart', async () => {
    const peerFingerprint = () =>
      new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
          resolve(socket.getPeerX509Certificate()!.fingerprint256);
          socket.end();
        });
        socket.on('error', reject);
      });
    const before = await peerFingerprint();
    assert.equal(before, world.certificates.status().fingerprint);
    const kit = await uploadKit();
    const response = await world.app.inject({
      method: 'PUT',
      url: '/v1/settings/ssl-certificates',
      headers: { ...bearer(world.adminToken), ...JSON_HEADERS },
      payload: kit.good,
    });
    assert.equal(response.statusCode, 200);
    const after = await peerFingerprint();
    assert.notEqual(after, before);
    assert.equal(after, response.json().certificate.fingerprint);
  });

  test('closing the server ends open event streams', async () => {
    const stream = readStream(port, { accept: 'text/event-stream', ...bearer(world.readToken) }, world.ca.certificatePem);
    await stream.until((text) => text.includes('event: move'), 'the history');
    // The certificate changed in the test before: verification by name is not the point here.
    await world.app.close();
    await stream.until((text) => text.includes('<end>'), 'the end of the stream');
    assert.equal(world.backend.listeners.size, 0);
  });
});

test('listenApiServer defaults to port 443 on :: (dual-stack)', async (t) => {
  const world = await createApiWorld();
  t.after(async () => {
    await world.app.close();
    world.certificates.stop();
  });
  const address = (await listenApiServer(world.app, { port: 0 })) as AddressInfo;
  assert.ok(address.address === '::' || address.address === '0.0.0.0', address.address);
  // Reachable over IPv4 loopback too, as the VIP may be IPv4.
  const status = await new Promise<number>((resolve, reject) => {
    httpsRequest({ host: '127.0.0.1', port: address.port, path: '/ping', ca: world.ca.certificatePem }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    })
      .on('error', reject)
      .end();
  });
  assert.equal(status, 200);
});

test('request logs name the token id and the certificate fingerprint, never a secret', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const world = await createApiWorld({ logger: pino({ level: 'info' }, sink) });
  t.after(async () => {
    await world.app.close();
    world.certificates.stop();
  });
  const kit = await uploadKit();
  const admin = { ...bearer(world.adminToken), ...JSON_HEADERS };
  await world.app.inject({ method: 'PUT', url: '/v1/settings/ssl-certificates', headers: admin, payload: kit.good });
  await world.app.inject({ method: 'POST', url: '/v1/management-address/move', headers: admin, payload: { to: 'node-2' } });
  await world.app.inject({ method: 'GET', url: '/v1/nodes', headers: bearer(`${world.readToken.slice(0, -3)}xyz`) });
  const log = lines.join('');
  assert.match(log, /"msg":"planned move requested"/);
  assert.match(log, /"msg":"serving certificate uploaded"/);
  for (const secret of [world.adminToken.split('.')[1]!, world.readToken.split('.')[1]!.slice(0, -3), 'PRIVATE KEY', 'authorization']) {
    assert.ok(!log.includes(secret), `the log holds ${secret.slice(0, 12)}…`);
  }
});
