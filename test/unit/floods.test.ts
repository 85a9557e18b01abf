import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { listenApiServer } from '../../src/api/server';
import { MemoryKeyValue } from '../../src/store/kv';
import { ClusterKeys, securityKeys } from '../../src/store/keys';
import { MAX_TOKEN_USES, parseTokenUses, TokenStore } from '../../src/security/tokens';
import { ClusterCa } from '../../src/security/ca';
import { createApiWorld, type ApiWorld } from './fakes';

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

async function until(what: string, predicate: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('join tokens: uses, lifetime', () => {
  const keys = securityKeys(new ClusterKeys('demo'));

  async function joinTokens(): Promise<TokenStore> {
    const kv = new MemoryKeyValue();
    await ClusterCa.loadOrCreate(kv, keys.ca, { cluster: 'demo' });
    return new TokenStore(kv, keys);
  }

  test('--uses N allows N joins, then the token is refused as used up; list shows what is left', async () => {
    const tokens = await joinTokens();
    const created = await tokens.create({ role: 'join', uses: 2 });
    const bearerPart = created.token.split(':')[2]!;
    assert.equal((await tokens.checkJoin(bearerPart)).ok, true);
    assert.deepEqual((await tokens.list()).map((record) => [record.uses, record.used, record.remaining]), [[2, 0, 2]]);
    assert.equal((await tokens.spendJoin(created.record.id)).ok, true);
    assert.deepEqual((await tokens.list()).map((record) => record.remaining), [1]);
    assert.equal((await tokens.spendJoin(created.record.id)).ok, true);
    assert.deepEqual(await tokens.spendJoin(created.record.id), { ok: false, reason: 'used-up' });
    assert.deepEqual(await tokens.checkJoin(bearerPart), { ok: false, reason: 'used-up' });
    assert.deepEqual((await tokens.list()).map((record) => record.remaining), [0]);
  });

  test('without --uses a join token joins any number of nodes until it expires, and counts them', async () => {
    const tokens = await joinTokens();
    const created = await tokens.create({ role: 'join' });
    for (let i = 0; i < 5; i++) assert.equal((await tokens.spendJoin(created.record.id)).ok, true);
    assert.deepEqual((await tokens.list()).map((record) => [record.uses, record.used, record.remaining]), [[null, 5, null]]);
  });

  test('concurrent joins spend the last use once (compare-and-swap on the mod revision)', async () => {
    const tokens = await joinTokens();
    const created = await tokens.create({ role: 'join', uses: 3 });
    const results = await Promise.all(Array.from({ length: 20 }, () => tokens.spendJoin(created.record.id)));
    assert.equal(results.filter((result) => result.ok).length, 3);
  });

  test('"never" is refused for join tokens, naming --ttl; read and admin tokens may keep it', async () => {
    const tokens = await joinTokens();
    await assert.rejects(tokens.create({ role: 'join', ttlMs: null }), /--ttl: a join token must expire/);
    assert.equal((await tokens.create({ role: 'admin', ttlMs: null })).record.expires, null);
    await assert.rejects(tokens.create({ role: 'read', uses: 2 }), /--uses: only join tokens/);
  });

  test('--uses parses a count or "unlimited"', () => {
    assert.equal(parseTokenUses('1'), 1);
    assert.equal(parseTokenUses(String(MAX_TOKEN_USES)), MAX_TOKEN_USES);
    assert.equal(parseTokenUses('unlimited'), null);
    for (const bad of ['0', '-1', '1.5', '1001', 'many', '']) assert.throws(() => parseTokenUses(bad), /--uses:/);
  });
});

describe('bad tokens: per-IP backoff and aggregated logs', () => {
  let world: ApiWorld;
  const lines: string[] = [];

  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    world = await createApiWorld({ logger: pino({ level: 'info' }, sink), authFailures: { maxFailures: 5, windowMs: 60_000, logIntervalMs: 3_600_000 } });
  });
  after(async () => {
    await world.app.close();
    world.certificates.stop();
  });

  test('after maxFailures bad tokens an IP gets 429 with Retry-After, even with a good token; other IPs are not affected', async () => {
    const wrong = `${world.readToken.slice(0, -3)}xyz`;
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      statuses.push((await world.app.inject({ method: 'GET', url: '/v1/nodes', headers: bearer(wrong), remoteAddress: '192.0.2.66' })).statusCode);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    const throttled = await world.app.inject({ method: 'GET', url: '/v1/nodes', headers: bearer(world.readToken), remoteAddress: '192.0.2.66' });
    assert.equal(throttled.statusCode, 429);
    const retryAfter = Number(throttled.headers['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${throttled.headers['retry-after']}`);
    assert.match(throttled.json().message, /too many bad tokens/);
    const other = await world.app.inject({ method: 'GET', url: '/v1/nodes', headers: bearer(world.readToken), remoteAddress: '192.0.2.67' });
    assert.equal(other.statusCode, 200);
    // No token at all is a browser before sign-in: not counted.
    for (let i = 0; i < 8; i++) {
      assert.equal((await world.app.inject({ method: 'GET', url: '/v1/nodes', remoteAddress: '192.0.2.68' })).statusCode, 401);
    }
  });

  test('failed attempts are logged as one line per IP with a count, never one line each, never the token', async () => {
    const before = lines.length;
    const wrong = `${world.adminToken.slice(0, -3)}abc`;
    for (let i = 0; i < 4; i++) await world.app.inject({ method: 'GET', url: '/v1/nodes', headers: bearer(wrong), remoteAddress: '192.0.2.70' });
    assert.equal(lines.length, before, 'no line per failed request');
    await world.app.inject({ method: 'GET', url: '/v1/nodes', headers: bearer(world.readToken), remoteAddress: '192.0.2.71' });
    assert.equal(lines.length, before + 1, 'one line for a good request');
    await world.app.close();
    const summary = lines.slice(before).map((line) => JSON.parse(line) as { msg: string; ip?: string; failures?: number; throttled?: number });
    const forIp = summary.filter((entry) => entry.msg === 'requests with a bad token' && entry.ip === '192.0.2.70');
    assert.deepEqual(forIp.map((entry) => [entry.failures, entry.throttled]), [[4, 0]]);
    const log = lines.join('');
    for (const secret of [wrong.split('.')[1]!, world.readToken.split('.')[1]!, 'authorization']) assert.ok(!log.includes(secret), 'a secret in the log');
  });
});

describe('event streams: the slot is taken atomically', () => {
  test('500 simultaneous streams get exactly the cap; the rest 503', async () => {
    const world = await createApiWorld({ maxEventStreams: 64, maxEventStreamsPerToken: 1000, heartbeatMs: 60_000 });
    const statuses: number[] = [];
    const requests = Array.from({ length: 500 }, () =>
      world.app
        .inject({ method: 'GET', url: '/v1/events', headers: { ...bearer(world.readToken), accept: 'text/event-stream' } })
        .then((response) => statuses.push(response.statusCode)),
    );
    // Refused streams answer at once; accepted ones stay open until the server closes them.
    await until('436 refusals', () => statuses.length >= 436);
    assert.equal(statuses.filter((status) => status === 503).length, 436);
    await world.app.close();
    await Promise.all(requests);
    world.certificates.stop();
    assert.equal(statuses.filter((status) => status === 200).length, 64);
  });

  test('one token holds at most maxEventStreamsPerToken streams; another token still gets its own', async () => {
    const world = await createApiWorld({ maxEventStreams: 64, maxEventStreamsPerToken: 4, heartbeatMs: 60_000 });
    const other = (await world.tokens.create({ role: 'read' })).token;
    const byToken = new Map<string, number[]>([[world.readToken, []], [other, []]]);
    const requests = [...byToken].flatMap(([token, statuses]) =>
      Array.from({ length: 20 }, () =>
        world.app.inject({ method: 'GET', url: '/v1/events', headers: { ...bearer(token), accept: 'text/event-stream' } }).then((response) => statuses.push(response.statusCode)),
      ),
    );
    await until('32 refusals', () => [...byToken.values()].every((statuses) => statuses.length >= 16));
    await world.app.close();
    await Promise.all(requests);
    world.certificates.stop();
    for (const statuses of byToken.values()) {
      assert.equal(statuses.filter((status) => status === 200).length, 4);
      assert.equal(statuses.filter((status) => status === 503).length, 16);
    }
  });
});

describe('connections and TLS on a loopback socket', () => {
  let world: ApiWorld;
  let port: number;

  before(async () => {
    world = await createApiWorld({ connections: { maxConnections: 100, maxConnectionsPerIp: 5 }, handshakeTimeoutMs: 1000, headersTimeoutMs: 1000 });
    port = (await listenApiServer(world.app, { port: 0, host: '127.0.0.1' })).port;
  });
  after(async () => {
    await world.app.close();
    world.certificates.stop();
  });

  function idle(): Promise<{ socket: Socket; closed: Promise<number> }> {
    return new Promise((resolve, reject) => {
      const opened = Date.now();
      const socket = netConnect({ host: '127.0.0.1', port }, () => resolve({ socket, closed }));
      const closed = new Promise<number>((resolveClosed) => socket.once('close', () => resolveClosed(Date.now() - opened)));
      socket.on('error', () => undefined);
      socket.once('error', reject);
    });
  }

  function ping(): Promise<number> {
    return new Promise((resolve, reject) => {
      httpsRequest({ host: '127.0.0.1', port, path: '/ping', ca: world.ca.certificatePem, agent: false }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
  }

  test('a TCP connection that never starts TLS is dropped after the handshake timeout', async () => {
    const { closed } = await idle();
    const heldMs = await closed;
    assert.ok(heldMs >= 900, `dropped after ${heldMs} ms, before the timeout`);
  });

  test('one address holds at most maxConnectionsPerIp connections; once they close it is served again', async () => {
    const held = await Promise.all(Array.from({ length: 5 }, () => idle()));
    const extra = await idle();
    // Closed at accept: well before the 1 s handshake timeout of the others.
    const extraMs = await extra.closed;
    assert.ok(held.every(({ socket }) => !socket.destroyed), 'the first five are still open');
    assert.ok(extraMs < 900, `the sixth was held ${extraMs} ms`);
    for (const { socket } of held) socket.destroy();
    await Promise.all(held.map(({ closed }) => closed));
    assert.equal(await ping(), 200);
  });

  for (const [name, cipher] of [
    ['CBC', 'ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA384:AES128-SHA256'],
    ['CCM8', 'ECDHE-ECDSA-AES128-CCM8:AES128-CCM8:AES256-CCM8'],
    ['ARIA', 'ECDHE-RSA-ARIA128-GCM-SHA256:ECDHE-ECDSA-ARIA128-GCM-SHA256:ARIA128-GCM-SHA256'],
    ['static RSA GCM', 'AES128-GCM-SHA256:AES256-GCM-SHA384'],
  ] as const) {
    test(`TLS 1.2 refuses ${name} suites (openssl s_client -cipher)`, async () => {
      const result = await sClient(port, ['-tls1_2', '-cipher', `${cipher}@SECLEVEL=0`]);
      assert.notEqual(result.code, 0, result.output);
      assert.doesNotMatch(result.output, /Cipher is (?!\(NONE\))[A-Z0-9-]+/);
    });
  }

  test('TLS 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305 works, and TLS 1.3 as is', async () => {
    for (const args of [
      ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256'],
      ['-tls1_2', '-cipher', 'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305'],
      ['-tls1_3'],
    ]) {
      const result = await sClient(port, args);
      assert.equal(result.code, 0, result.output);
      assert.match(result.output, /Cipher is (ECDHE-[A-Z0-9-]+(GCM-SHA\d+|CHACHA20-POLY1305)|TLS_[A-Z0-9_]+)/);
    }
  });
});

function sClient(port: number, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stdin.end('Q\n');
    child.on('close', (code) => resolve({ code: code ?? -1, output }));
  });
}


