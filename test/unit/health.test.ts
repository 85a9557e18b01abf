import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/config';
import type { HealthCheckConfig } from '../../src/config/health';
import { InputError } from '../../src/config/schema-check';
import { HealthMonitor } from '../../src/health/monitor';
import { buildProbe, MAX_OUTPUT_CHARS, type ProbeResult } from '../../src/health/probes';
import type { NodeHealthRecord } from '../../src/store/records';

function checks(...list: unknown[]): HealthCheckConfig[] {
  return resolveConfig({
    cluster: 'demo',
    node: { name: 'node-1', interface: 'mgmt-br' },
    vip: { mode: 'static', address: '192.0.2.10' },
    etcd: { endpoints: ['http://192.0.2.11:2379'] },
    health: { checks: list },
  }).health.checks;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function until(condition: () => boolean, what: string, deadlineMs = 10_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const ok: ProbeResult = { ok: true, detail: 'HTTP 200', output: '', durationMs: 1 };
const bad: ProbeResult = { ok: false, detail: 'HTTP 503', output: '', durationMs: 1 };

test('http probe: a status in the expected ranges passes, others fail; headers are sent', async (t) => {
  let status = 200;
  let seenHeader: string | undefined;
  const server = createServer((request, response) => {
    seenHeader = request.headers['x-check'] as string | undefined;
    response.statusCode = status;
    response.end('body');
  });
  const port = await listen(server);
  t.after(() => server.close());
  const [check] = checks({ name: 'api', http: `http://127.0.0.1:${port}/readyz?token=secret`, headers: { 'X-Check': 'yes' } });
  const probe = buildProbe(check!.probe, check!.field);
  assert.deepEqual([(await probe(1000)).ok, seenHeader], [true, 'yes']);
  status = 302;
  assert.equal((await probe(1000)).ok, true);
  status = 503;
  const failed = await probe(1000);
  assert.deepEqual([failed.ok, failed.detail], [false, 'HTTP 503']);
  const [strict] = checks({ name: 'api', http: `http://127.0.0.1:${port}/`, expectedStatus: [204] });
  status = 200;
  assert.equal((await buildProbe(strict!.probe, strict!.field)(1000)).ok, false);
});

test('http probe: a server that never answers fails at the timeout; a closed port fails at once', async (t) => {
  const server = createServer(() => undefined);
  const port = await listen(server);
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const [slow] = checks({ name: 'api', http: `http://127.0.0.1:${port}/`, interval: '1s', timeout: '100ms' });
  const result = await buildProbe(slow!.probe, slow!.field)(slow!.timeoutMs);
  assert.deepEqual([result.ok, result.detail], [false, 'no answer within 100ms']);
  const [closed] = checks({ name: 'api', http: `http://127.0.0.1:${await closedPort()}/` });
  const refused = await buildProbe(closed!.probe, closed!.field)(1000);
  assert.deepEqual([refused.ok, refused.detail], [false, 'connection refused']);
});

test('http probe: an unreadable CA file is an InputError naming the field', () => {
  const [check] = checks({ name: 'api', http: 'https://127.0.0.1:6443/readyz', ca: '/nonexistent/ca.pem' });
  assert.throws(() => buildProbe(check!.probe, check!.field), (error: unknown) => error instanceof InputError && error.field === 'health.checks[0].ca');
});

test('command probe: a program that cannot be run is an InputError naming the field (vipd run exits 2)', () => {
  const [missing] = checks({ name: 'gone', command: ['/nonexistent/check'] });
  assert.throws(() => buildProbe(missing!.probe, missing!.field), (error: unknown) => error instanceof InputError && error.field === 'health.checks[0].command[0]' && /ENOENT/.test(error.message));
});

test('tcp probe: a listening port passes, a closed port fails', async (t) => {
  const server = createTcpServer((socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const [open, closed] = checks(
    { name: 'open', tcp: `127.0.0.1:${(server.address() as AddressInfo).port}` },
    { name: 'closed', tcp: `127.0.0.1:${await closedPort()}` },
  );
  assert.equal((await buildProbe(open!.probe, open!.field)(1000)).ok, true);
  const refused = await buildProbe(closed!.probe, closed!.field)(1000);
  assert.deepEqual([refused.ok, refused.detail], [false, 'connection refused']);
});

test('command probe: exit 0 passes, another exit fails with its output cut short; no shell', async () => {
  const [pass, fail, shell] = checks(
    { name: 'pass', command: [process.execPath, '-e', 'process.stdout.write("fine")'] },
    { name: 'fail', command: [process.execPath, '-e', 'process.stdout.write("x".repeat(5000)); process.exit(3)'] },
    { name: 'shell', command: ['/bin/echo', '$(id)'] },
  );
  const passed = await buildProbe(pass!.probe, pass!.field)(5000);
  assert.deepEqual([passed.ok, passed.output], [true, 'fine']);
  const failed = await buildProbe(fail!.probe, fail!.field)(5000);
  assert.deepEqual([failed.ok, failed.detail], [false, 'exit code 3']);
  assert.ok(failed.output.length <= MAX_OUTPUT_CHARS, `${failed.output.length} chars kept`);
  assert.equal((await buildProbe(shell!.probe, shell!.field)(5000)).output, '$(id)\n');
});

test('command probe: a hanging command is killed with its children at the timeout and counts as failed', async () => {
  // The child prints its own child's pid, then both hang.
  const script = 'const c = require("child_process").spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" }); process.stdout.write(String(c.pid)); setInterval(() => {}, 1000);';
  const [hang] = checks({ name: 'hang', command: [process.execPath, '-e', script], interval: '2s', timeout: '1s' });
  const result = await buildProbe(hang!.probe, hang!.field)(hang!.timeoutMs);
  assert.deepEqual([result.ok, result.detail], [false, 'timed out after 1000ms and was killed']);
  const grandchild = Number(result.output);
  assert.ok(grandchild > 0, `grandchild pid in "${result.output}"`);
  await until(() => {
    try {
      process.kill(grandchild, 0);
      return false;
    } catch {
      return true;
    }
  }, 'the hung command\'s child to be killed');
});

test('monitor: starts unhealthy, healthy after rise successes, unhealthy after fall failures', () => {
  const changes: NodeHealthRecord[] = [];
  const monitor = new HealthMonitor({ node: 'node-1', checks: checks({ name: 'api', tcp: '127.0.0.1:1' }), onChange: (health) => changes.push(health) });
  assert.equal(monitor.isHealthy, false);
  assert.match(monitor.unhealthyReason()!, /check api failing \(no result yet\)/);
  monitor.feed('api', ok);
  assert.equal(monitor.isHealthy, false);
  monitor.feed('api', ok);
  assert.equal(monitor.isHealthy, true);
  monitor.feed('api', bad);
  monitor.feed('api', bad);
  assert.equal(monitor.isHealthy, true);
  monitor.feed('api', bad);
  assert.equal(monitor.isHealthy, false);
  assert.equal(monitor.unhealthyReason(), 'check api failing: HTTP 503');
  assert.deepEqual(changes.map((change) => [change.healthy, change.failing]), [[true, []], [false, ['api']]]);
  assert.deepEqual(monitor.snapshot().checks[0]!.lastResult?.detail, 'HTTP 503');
});

test('monitor: a node without checks is always healthy; one failing check of two makes it unhealthy', () => {
  assert.equal(new HealthMonitor({ node: 'node-1', checks: [] }).isHealthy, true);
  const monitor = new HealthMonitor({ node: 'node-1', checks: checks({ name: 'a', tcp: '127.0.0.1:1', rise: 1 }, { name: 'b', tcp: '127.0.0.1:2', rise: 1 }) });
  monitor.feed('a', ok);
  assert.equal(monitor.isHealthy, false);
  monitor.feed('b', ok);
  assert.equal(monitor.isHealthy, true);
  monitor.feed('b', bad);
  monitor.feed('b', bad);
  monitor.feed('b', bad);
  assert.deepEqual([monitor.isHealthy, monitor.snapshot().failing], [false, ['b']]);
});

test('monitor: a check that fails every other probe never reaches fall 3', () => {
  const changes: NodeHealthRecord[] = [];
  const monitor = new HealthMonitor({ node: 'node-1', checks: checks({ name: 'flap', tcp: '127.0.0.1:1' }), onChange: (health) => changes.push(health) });
  monitor.feed('flap', ok);
  monitor.feed('flap', ok);
  for (let probe = 0; probe < 100; probe += 1) monitor.feed('flap', probe % 2 === 0 ? bad : ok);
  assert.equal(monitor.isHealthy, true);
  assert.equal(changes.length, 1);
});

test('monitor: runs real probes on their interval against a loopback server that stops', async (t) => {
  const server = createServer((_request, response) => response.end('ok'));
  const port = await listen(server);
  const changes: NodeHealthRecord[] = [];
  let probes = 0;
  const monitor = new HealthMonitor({
    node: 'node-1',
    checks: checks({ name: 'api', http: `http://127.0.0.1:${port}/`, interval: '100ms', fall: 2, rise: 2 }),
    onChange: (health) => changes.push(health),
    onProbe: () => (probes += 1),
  });
  t.after(() => monitor.stop());
  monitor.start();
  await until(() => monitor.isHealthy, 'the node to turn healthy');
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await until(() => !monitor.isHealthy, 'the node to turn unhealthy');
  assert.match(monitor.unhealthyReason()!, /check api failing: connection refused/);
  assert.ok(probes >= 4, `${probes} probes`);
  assert.deepEqual(changes.map((change) => change.healthy), [true, false]);
});

test('monitor: runOnce gives each check one verdict (vipd doctor)', async () => {
  const monitor = new HealthMonitor({ node: 'node-1', checks: checks({ name: 'closed', tcp: `127.0.0.1:${await closedPort()}` }, { name: 'true', command: ['/bin/true'] }) });
  const verdicts = await monitor.runOnce();
  assert.deepEqual(verdicts.map(({ check, result }) => [check.name, result.ok]), [['closed', false], ['true', true]]);
});

test('vipd doctor runs each check once and gives one verdict per check', async () => {
  const { checkHealth } = await import('../../src/doctor/health');
  const port = await closedPort();
  const results = await checkHealth('node-1', { checks: checks({ name: 'api', tcp: `127.0.0.1:${port}` }, { name: 'ok', command: ['/bin/true'] }) });
  assert.deepEqual(results.map((result) => [result.name, result.verdict]), [['health:api', 'fail'], ['health:ok', 'ok']]);
  assert.match(results[0]!.detail, new RegExp(`^tcp 127.0.0.1:${port}: connection refused$`));
  assert.match(results[0]!.hint!, /not eligible to hold the VIP/);
  assert.deepEqual((await checkHealth('node-1', { checks: [] })).map((result) => result.verdict), ['skip']);
  const badCa = await checkHealth('node-1', { checks: checks({ name: 'api', http: 'https://127.0.0.1:6443/', ca: '/nonexistent.pem' }) });
  assert.deepEqual([badCa[0]!.verdict, badCa[0]!.detail], ['fail', 'health.checks[0].ca: cannot read /nonexistent.pem: ENOENT']);
});
