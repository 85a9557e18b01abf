import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino, { type Logger } from 'pino';
import { resolveConfig, type HookConfig } from '../../src/config/config';
import { InputError } from '../../src/config/schema-check';
import { VipLifecycle, type VipTransition } from '../../src/agent/lifecycle';
import { OUTPUT_LIMIT_BYTES } from '../../src/hooks/attempt';
import { runCommand } from '../../src/hooks/command';
import { hookEnvironment, hookEventOf, type HookContext } from '../../src/hooks/context';
import { HookRunner } from '../../src/hooks/runner';
import { postWebhook } from '../../src/hooks/webhook';
import { type HookHistory } from '../../src/store/hook-history';
import { type HookFailureRecord, type HookRunRecord } from '../../src/store/records';
import { ClusterCa } from '../../src/security/ca';
import { MemoryKeyValue } from '../../src/store/kv';
import { describeManagementAddress } from '../../src/status/management-address';

const base = {
  cluster: 'demo',
  node: { name: 'node-1', interface: 'mgmt-br' },
  vip: { mode: 'static', address: '192.0.2.10' },
  etcd: { endpoints: ['http://192.0.2.11:2379'] },
};

const SECRET = 'Bearer s3cr3t-hook-token';

function hooksOf(hooks: unknown[]): HookConfig[] {
  return resolveConfig({ ...base, hooks }).hooks;
}

function rejects(hooks: unknown[], field: string, pattern: RegExp): void {
  assert.throws(
    () => resolveConfig({ ...base, hooks }),
    (error: unknown) => {
      assert.ok(error instanceof InputError, String(error));
      assert.equal(error.field, field);
      assert.match(error.message, pattern);
      return true;
    },
  );
}

const dir = mkdtempSync(join(tmpdir(), 'vipd-hooks-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let scriptCount = 0;

/** Writes an executable shell script and returns its path. */
function script(body: string): string {
  scriptCount += 1;
  const path = join(dir, `hook-${scriptCount}.sh`);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

function context(overrides: Partial<HookContext> = {}): HookContext {
  return {
    event: 'acquire',
    cause: 'acquired',
    reason: 'the lease of node-2 expired',
    vip: '192.0.2.10',
    node: 'node-1',
    nodeIP: '192.0.2.11',
    mac: '8c:dc:d4:b5:f0:01',
    term: 42,
    previousHolder: 'node-2',
    cluster: 'demo',
    time: new Date().toISOString(),
    ...overrides,
  };
}

/** A pino logger whose lines land in `lines`, to check what is (not) logged. */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString());
      callback();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

class MemoryHistory implements HookHistory {
  readonly runs: HookRunRecord[] = [];
  failure: HookFailureRecord | null = null;
  cleared = 0;

  async record(run: HookRunRecord): Promise<void> {
    this.runs.push(run);
  }
  async setFailure(failure: HookFailureRecord): Promise<void> {
    this.failure = failure;
  }
  async clearFailure(): Promise<void> {
    this.failure = null;
    this.cleared += 1;
  }
}

async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function runner(hooks: HookConfig[], overrides: Partial<ConstructorParameters<typeof HookRunner>[0]> = {}): { runner: HookRunner; history: MemoryHistory; lines: string[] } {
  const history = new MemoryHistory();
  const { logger, lines } = capturingLogger();
  const created = new HookRunner({ hooks, node: 'node-1', logger, history, holds: () => true, onCooldownChange: () => undefined, ...overrides });
  return { runner: created, history, lines };
}

describe('hooks config', () => {
  test('the documented example is accepted, with defaults filled in', () => {
    const hooks = hooksOf([
      { on: ['acquire'], command: ['/usr/local/bin/repoint-floating-ip', '--to', 'self'], timeout: '10s', retries: 3, required: true },
      { on: ['acquire', 'release', 'fault'], webhook: { url: 'https://192.0.2.50:8443/vip?token=abc', headers: { Authorization: SECRET }, ca: '/etc/vipd/hook-ca.pem' }, timeout: '5s' },
    ]);
    assert.equal(hooks.length, 2);
    assert.deepEqual(hooks[0], {
      name: '/usr/local/bin/repoint-floating-ip',
      field: 'hooks[0]',
      on: ['acquire'],
      action: { kind: 'command', argv: ['/usr/local/bin/repoint-floating-ip', '--to', 'self'] },
      timeoutMs: 10_000,
      retries: 3,
      backoffMs: 1000,
      required: true,
      cooldownMs: 30_000,
    });
    assert.equal(hooks[1]!.timeoutMs, 5000);
    assert.equal(hooks[1]!.retries, 2);
    assert.equal(hooks[1]!.required, false);
    // The name never carries the query (it may hold a token) nor the headers.
    assert.equal(hooks[1]!.name, 'https://192.0.2.50:8443/vip');
    assert.equal(resolveConfig(base).hooks.length, 0);
  });

  test('every hook error names its field', () => {
    rejects([{ on: ['acquire'] }], 'hooks[0]', /exactly one of command or webhook/);
    rejects([{ on: ['acquire'], command: ['/bin/true'], webhook: { url: 'https://192.0.2.50/' } }], 'hooks[0]', /exactly one/);
    rejects([{ on: ['boot'], command: ['/bin/true'] }], 'hooks[0].on[0]', /acquire, release, fault/);
    rejects([{ on: [], command: ['/bin/true'] }], 'hooks[0].on', /list of events/);
    rejects([{ on: ['acquire'], command: ['true'] }], 'hooks[0].command[0]', /absolute path/);
    rejects([{ on: ['acquire'], command: [] }], 'hooks[0].command', /argv list/);
    rejects([{ on: ['acquire'], command: ['/bin/true'], timeout: 'soon' }], 'hooks[0].timeout', /duration/);
    rejects([{ on: ['acquire'], command: ['/bin/true'], timeout: '10m' }], 'hooks[0].timeout', /from 10ms to 5m/);
    rejects([{ on: ['acquire'], command: ['/bin/true'], retries: 11 }], 'hooks[0].retries', /0 to 10/);
    rejects([{ on: ['release'], command: ['/bin/true'], required: true }], 'hooks[0].required', /acquire hooks only/);
    rejects([{ on: ['acquire'], command: ['/bin/true'], cooldown: '1m' }], 'hooks[0].cooldown', /required hooks only/);
    rejects([{ on: ['acquire'], command: ['/bin/true'], shell: true }], 'hooks[0].shell', /unknown field/);
    rejects([{ on: ['acquire'], webhook: { url: 'http://192.0.2.50/vip' } }], 'hooks[0].webhook.url', /https:\/\/.*only to loopback/);
    rejects([{ on: ['acquire'], webhook: { url: 'https://user:pw@192.0.2.50/vip' } }], 'hooks[0].webhook.url', /credentials/);
    rejects([{ on: ['acquire'], webhook: { url: 'ftp://192.0.2.50/vip' } }], 'hooks[0].webhook.url', /https:\/\//);
    rejects([{ on: ['acquire'], webhook: { url: 'http://127.0.0.1:9/vip', ca: '/x.pem' } }], 'hooks[0].webhook.ca', /https:\/\/ URLs only/);
  });

  test('plain HTTP is allowed to loopback only', () => {
    for (const url of ['http://127.0.0.1:8080/vip', 'http://[::1]:8080/vip', 'http://localhost/vip']) {
      assert.equal(hooksOf([{ on: ['acquire'], webhook: { url } }])[0]!.action.kind, 'webhook');
    }
  });

  test('a bad header value is refused without printing it', () => {
    assert.throws(
      () => resolveConfig({ ...base, hooks: [{ on: ['acquire'], webhook: { url: 'https://192.0.2.50/', headers: { Authorization: `${SECRET}\r\nX: y` } } }] }),
      (error: unknown) => {
        assert.ok(error instanceof InputError);
        assert.equal(error.field, 'hooks[0].webhook.headers.Authorization');
        assert.ok(!error.message.includes('s3cr3t'), error.message);
        return true;
      },
    );
  });

  test('HookRunner.check names the field of a command that cannot run or a CA that cannot be read', () => {
    const notExecutable = join(dir, 'not-executable.sh');
    writeFileSync(notExecutable, '#!/bin/sh\n', { mode: 0o644 });
    assert.throws(() => HookRunner.check(hooksOf([{ on: ['acquire'], command: [notExecutable] }])), (error: unknown) => error instanceof InputError && error.field === 'hooks[0].command[0]');
    assert.throws(() => HookRunner.check(hooksOf([{ on: ['acquire'], command: ['/nonexistent/vipd-hook'] }])), /hooks\[0\]\.command\[0\]: cannot run \/nonexistent\/vipd-hook: ENOENT/);
    assert.throws(
      () => HookRunner.check(hooksOf([{ on: ['acquire'], command: ['/bin/true'] }, { on: ['fault'], webhook: { url: 'https://192.0.2.50/', ca: notExecutable } }])),
      /hooks\[1\]\.webhook\.ca: .* holds no PEM certificate/,
    );
    const writable = script('exit 0');
    chmodSync(writable, 0o777);
    assert.throws(() => HookRunner.check(hooksOf([{ on: ['acquire'], command: [writable] }])), /hooks\[0\]\.command\[0\]: .* is writable by its group or every user \(mode 0777\); run: chmod go-w/);
    assert.throws(() => HookRunner.check(hooksOf([{ on: ['acquire'], command: [dir] }])), /hooks\[0\]\.command\[0\]: .* is not a regular file/);
    HookRunner.check(hooksOf([{ on: ['acquire'], command: ['/bin/true'] }]));
  });
});

describe('hook commands', () => {
  test('get the VIPD_* environment, without a shell', async () => {
    const path = script('env | grep ^VIPD_ | sort; echo "args: $#:$1"');
    const result = await runCommand([path, 'a b; echo injected'], hookEnvironment(context()), 5000);
    assert.equal(result.ok, true, result.detail);
    const env = Object.fromEntries(result.stdout.split('\n').filter((line) => line.startsWith('VIPD_')).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
    assert.equal(env['VIPD_EVENT'], 'acquire');
    assert.equal(env['VIPD_CAUSE'], 'acquired');
    assert.equal(env['VIPD_VIP'], '192.0.2.10');
    assert.equal(env['VIPD_NODE'], 'node-1');
    assert.equal(env['VIPD_NODE_IP'], '192.0.2.11');
    assert.equal(env['VIPD_MAC'], '8c:dc:d4:b5:f0:01');
    assert.equal(env['VIPD_TERM'], '42');
    assert.equal(env['VIPD_REASON'], 'the lease of node-2 expired');
    assert.equal(env['VIPD_PREVIOUS_HOLDER'], 'node-2');
    assert.equal(env['VIPD_CLUSTER'], 'demo');
    // One argument, passed as is: no shell splits or runs it.
    assert.match(result.stdout, /^args: 1:a b; echo injected$/m);
    const empty = hookEnvironment(context({ term: null, previousHolder: null }));
    assert.equal(empty['VIPD_TERM'], '');
    assert.equal(empty['VIPD_PREVIOUS_HOLDER'], '');
  });

  test('a failing command reports its exit code and keeps its output', async () => {
    const result = await runCommand([script('echo to-stdout; echo to-stderr >&2; exit 3')], {}, 5000);
    assert.equal(result.ok, false);
    assert.equal(result.failure, 'exit');
    assert.equal(result.exitCode, 3);
    assert.equal(result.detail, 'exit code 3');
    assert.equal(result.stdout, 'to-stdout\n');
    assert.equal(result.stderr, 'to-stderr\n');
    const missing = await runCommand(['/nonexistent/vipd-hook'], {}, 5000);
    assert.equal(missing.failure, 'error');
    assert.match(missing.detail, /ENOENT/);
  });

  test('the timeout kills the command and everything it started', async () => {
    const pidFile = join(dir, 'child.pid');
    const result = await runCommand([script(`sleep 30 & echo $! > ${pidFile}; echo started; sleep 30`)], {}, 300);
    // The timeout path, not the script's end: it was killed, it did not exit.
    assert.equal(result.ok, false);
    assert.equal(result.failure, 'timeout');
    assert.match(result.detail, /timed out after 300ms/);
    assert.deepEqual([result.exitCode, result.signal], [null, 'SIGKILL']);
    assert.equal(result.stdout, 'started\n');
    const child = Number(readFileSync(pidFile, 'utf8'));
    await until('the background child to die', () => !pidAlive(child), 2000);
  });

  test('output is cut at a few KB', async () => {
    const result = await runCommand([script(`head -c ${OUTPUT_LIMIT_BYTES * 4} /dev/zero | tr '\\0' x`)], {}, 5000);
    assert.equal(result.ok, true);
    assert.equal(result.stdout.length, OUTPUT_LIMIT_BYTES);
    assert.equal(result.truncated, true);
  });

  test('a background child holding the pipes does not hold up the result', async (t) => {
    const pidFile = join(dir, 'holder.pid');
    const result = await runCommand([script(`sleep 60 & echo $! > ${pidFile}; echo done`)], {}, 120_000);
    const child = Number(readFileSync(pidFile, 'utf8'));
    // The result came while the child still held the pipes: it did not wait for it.
    const stillRunning = pidAlive(child);
    t.after(() => {
      if (pidAlive(child)) process.kill(child, 'SIGKILL');
    });
    assert.equal(result.ok, true);
    assert.equal(result.stdout, 'done\n');
    assert.ok(stillRunning, 'the background child had already exited: the test proves nothing');
  });
});

describe('the hook runner', () => {
  test('retries failures with exponential backoff, then records the run', async () => {
    const stamps = join(dir, 'stamps');
    const path = script(`date +%s%N >> ${stamps}; echo attempt >&2; exit 1`);
    const hooks = hooksOf([{ on: ['acquire'], command: [path], retries: 3, backoff: '100ms' }]);
    const failures: string[] = [];
    const finished: string[] = [];
    const { runner: hookRunner, history } = runner(hooks, {
      metrics: { hookAttemptFailed: (event, failure) => failures.push(`${event}:${failure}`), hookFinished: (event, outcome) => finished.push(`${event}:${outcome}`) },
    });
    hookRunner.dispatch(context());
    const run = await until('the run to be recorded', () => history.runs[0]);
    assert.equal(run.outcome, 'failed');
    assert.equal(run.attempts, 4);
    assert.equal(run.detail, 'exit code 1');
    assert.equal(run.stderr, 'attempt\n');
    assert.equal(run.term, 42);
    const times = readFileSync(stamps, 'utf8').trim().split('\n').map((line) => Number(BigInt(line) / 1_000_000n));
    assert.equal(times.length, 4);
    const gaps = times.slice(1).map((time, index) => time - times[index]!);
    // At least 100, 200 and 400 ms (timers never fire early); no upper bound and no order
    // between them: starting a process on a busy host can take longer than the difference.
    assert.ok(gaps[0]! >= 95 && gaps[1]! >= 195 && gaps[2]! >= 395, `gaps ${gaps.join(', ')}`);
    assert.deepEqual(failures, ['acquire:exit', 'acquire:exit', 'acquire:exit', 'acquire:exit']);
    assert.deepEqual(finished, ['acquire:failed']);
  });

  test('a hook that succeeds on a retry is recorded as ok', async () => {
    const counter = join(dir, 'counter');
    writeFileSync(counter, '0');
    const path = script(`n=$(($(cat ${counter}) + 1)); echo $n > ${counter}; [ $n -ge 3 ]`);
    const { runner: hookRunner, history } = runner(hooksOf([{ on: ['fault'], command: [path], retries: 5, backoff: '10ms' }]));
    hookRunner.dispatch(context({ event: 'acquire', cause: 'acquired' }));
    hookRunner.dispatch(context({ event: 'fault', cause: 'fenced', reason: 'the fencing deadline passed' }));
    const run = await until('the fault run', () => history.runs[0]);
    assert.equal(run.event, 'fault');
    assert.equal(run.cause, 'fenced');
    assert.equal(run.outcome, 'ok');
    assert.equal(run.attempts, 3);
    assert.equal(history.runs.length, 1, 'a hook not registered for acquire did not run');
  });

  test('one hook runs its events in order; drain() kills what still runs', async () => {
    const log = join(dir, 'order');
    const path = script(`echo "start $VIPD_EVENT" >> ${log}; [ "$VIPD_EVENT" = acquire ] && sleep 0.3; echo "end $VIPD_EVENT" >> ${log}`);
    const slowPid = join(dir, 'slow.pid');
    const slow = script(`echo $$ > ${slowPid}; exec sleep 30`);
    const { runner: hookRunner, history } = runner(hooksOf([{ on: ['acquire', 'release'], command: [path] }, { on: ['release'], command: [slow], timeout: '1m', retries: 0 }]));
    hookRunner.dispatch(context());
    hookRunner.dispatch(context({ event: 'release', cause: 'handoff' }));
    await until('both runs of the first hook', () => history.runs.filter((run) => run.hook === path).length === 2);
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['start acquire', 'end acquire', 'start release', 'end release']);
    const pid = await until('the slow hook to start', () => (existsSync(slowPid) ? Number(readFileSync(slowPid, 'utf8')) || undefined : undefined));
    await hookRunner.drain(200);
    // drain() killed it rather than waited for it: its run is recorded as stopped, and it is gone.
    const killed = history.runs.find((run) => run.hook === slow);
    assert.equal(killed?.outcome, 'failed');
    assert.match(killed?.detail ?? '', /shutting down/);
    assert.equal(pidAlive(pid), false, 'the slow hook still runs after drain()');
  });

  test('a required acquire hook that fails makes the node give the VIP up and cool down', async () => {
    const cooldowns: number[] = [];
    const hooks = hooksOf([{ on: ['acquire'], command: [script('echo "cannot repoint" >&2; exit 1')], required: true, retries: 1, backoff: '10ms', cooldown: '1s' }]);
    const { runner: hookRunner, history } = runner(hooks, { holds: (term) => term === 42, onCooldownChange: () => cooldowns.push(Date.now()) });
    assert.equal(hookRunner.cooldownReason(), null);
    hookRunner.dispatch(context());
    await until('the cooldown', () => cooldowns.length === 1);
    const reason = hookRunner.cooldownReason();
    assert.match(reason ?? '', /^required acquire hook \S+ failed after 2 attempts: exit code 1$/);
    await until('the failure record', () => history.failure);
    assert.equal(history.failure?.node, 'node-1');
    assert.equal(history.failure?.term, 42);
    assert.equal(history.failure?.reason, reason);
    // The cooldown ends by itself, and the agent is told so it can campaign again.
    await until('the end of the cooldown', () => cooldowns.length === 2, 3000);
    assert.equal(hookRunner.cooldownReason(), null);
    assert.ok(cooldowns[1]! - cooldowns[0]! >= 990);
    await hookRunner.drain(100);
  });

  test('a required hook that fails for a term this node no longer holds changes nothing; success clears a failure', async () => {
    const flag = join(dir, 'fail-flag');
    writeFileSync(flag, '');
    const hooks = hooksOf([{ on: ['acquire'], command: [script(`[ ! -e ${flag} ]`)], required: true, retries: 0 }]);
    let changes = 0;
    const { runner: hookRunner, history } = runner(hooks, { holds: () => false, onCooldownChange: () => (changes += 1) });
    hookRunner.dispatch(context({ term: 7 }));
    await until('the run', () => history.runs.length === 1);
    assert.equal(hookRunner.cooldownReason(), null);
    assert.equal(changes, 0);
    assert.equal(history.failure, null);
    rmSync(flag);
    hookRunner.dispatch(context({ term: 9 }));
    await until('the second run', () => history.runs.length === 2);
    await until('the failure to be cleared', () => history.cleared === 1);
  });

  test('drain() cuts a retry backoff short: the run ends with its last failure and no further attempt', async () => {
    const attemptsFile = join(dir, 'drain-attempts');
    const path = script(`echo attempt >> ${attemptsFile}; exit 1`);
    const failures: string[] = [];
    const { runner: hookRunner, history, lines } = runner(hooksOf([{ on: ['acquire'], command: [path], retries: 2, backoff: '1m' }]), {
      metrics: { hookAttemptFailed: (event, failure) => failures.push(`${event}:${failure}`), hookFinished: () => undefined },
    });
    hookRunner.dispatch(context());
    const retrying = await until('the retry to be scheduled', () =>
      lines.map((line) => JSON.parse(line) as { msg: string; attempt?: number; retryInMs?: number }).find((line) => line.msg === 'hook failed; retrying'),
    );
    assert.equal(retrying.attempt, 1);
    assert.equal(retrying.retryInMs, 60_000);
    await hookRunner.drain(0);
    const run = history.runs[0];
    assert.equal(run?.outcome, 'failed');
    assert.equal(run?.attempts, 1);
    assert.equal(run?.detail, 'exit code 1');
    assert.equal(readFileSync(attemptsFile, 'utf8'), 'attempt\n');
    assert.deepEqual(failures, ['acquire:exit']);
  });
});

describe('webhooks', () => {
  const received: Array<{ body: unknown; headers: IncomingMessage['headers'] }> = [];
  let httpsServer: Server;
  let httpServer: Server;
  let httpsUrl: string;
  let httpUrl: string;
  let caPath: string;
  let statusToSend = 200;

  function receive(request: IncomingMessage, respond: (status: number) => void): void {
    let text = '';
    request.on('data', (chunk: Buffer) => (text += chunk.toString()));
    request.on('end', () => {
      if (request.url === '/hang') return;
      received.push({ body: JSON.parse(text), headers: request.headers });
      respond(statusToSend);
    });
  }

  before(async () => {
    // A throwaway CA and a certificate for 127.0.0.1, as a user's webhook receiver would have.
    const ca = await ClusterCa.loadOrCreate(new MemoryKeyValue(), 'ca', { cluster: 'hook-receiver' });
    const issued = await ca.issueServingCertificate({ nodeName: 'receiver', nodeIp: '127.0.0.1', vip: '127.0.0.1', fqdn: null });
    caPath = join(dir, 'hook-ca.pem');
    writeFileSync(caPath, ca.certificatePem);
    httpsServer = createHttpsServer({ key: issued.privateKey, cert: issued.chain }, (request, response) =>
      receive(request, (status) => response.writeHead(status, { 'content-type': 'text/plain' }).end(`answered ${status}`)),
    );
    httpServer = createHttpServer((request, response) => receive(request, (status) => response.writeHead(status).end('ok')));
    await new Promise<void>((resolve) => httpsServer.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    httpsUrl = `https://127.0.0.1:${(httpsServer.address() as AddressInfo).port}/vip`;
    httpUrl = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}/vip`;
  });

  after(() => {
    httpsServer.closeAllConnections();
    httpsServer.close();
    httpServer.closeAllConnections();
    httpServer.close();
  });

  test('POSTs the event as JSON over HTTPS, trusting the configured CA; secrets stay out of logs and history', async () => {
    received.length = 0;
    statusToSend = 200;
    const hooks = hooksOf([{ on: ['acquire', 'release', 'fault'], webhook: { url: httpsUrl, headers: { Authorization: SECRET }, ca: caPath } }]);
    HookRunner.check(hooks);
    const { runner: hookRunner, history, lines } = runner(hooks);
    hookRunner.dispatch(context());
    hookRunner.dispatch(context({ event: 'fault', cause: 'lease_lost', reason: 'the lease expired in etcd', previousHolder: null }));
    await until('two deliveries', () => history.runs.length === 2);
    assert.deepEqual(received.map((entry) => (entry.body as HookContext).event), ['acquire', 'fault']);
    const body = received[0]!.body as Record<string, unknown>;
    assert.deepEqual(
      { ...body, time: undefined },
      { event: 'acquire', cause: 'acquired', reason: 'the lease of node-2 expired', vip: '192.0.2.10', node: 'node-1', nodeIP: '192.0.2.11', mac: '8c:dc:d4:b5:f0:01', term: 42, previousHolder: 'node-2', cluster: 'demo', time: undefined },
    );
    assert.equal(received[1]!.headers['authorization'], SECRET);
    assert.equal(received[1]!.headers['content-type'], 'application/json');
    assert.equal(history.runs[0]!.outcome, 'ok');
    assert.equal(history.runs[0]!.httpStatus, 200);
    assert.equal(history.runs[0]!.stdout, 'answered 200');
    assert.ok(!lines.join('').includes('s3cr3t'), 'the Authorization header is never logged');
    assert.ok(!JSON.stringify(history.runs).includes('s3cr3t'), 'nor recorded');
  });

  test('without the CA the receiver is not trusted; HTTP errors and silence are failures', async () => {
    const untrusted = await postWebhook(httpsUrl, {}, null, '{}', 2000);
    assert.equal(untrusted.ok, false);
    assert.equal(untrusted.failure, 'error');
    assert.match(untrusted.detail, /certificate/i);

    statusToSend = 503;
    const refused = await postWebhook(httpsUrl, {}, readFileSync(caPath, 'utf8'), '{}', 2000);
    assert.equal(refused.failure, 'http');
    assert.equal(refused.httpStatus, 503);
    assert.equal(refused.stdout, 'answered 503');
    statusToSend = 200;

    const silent = await postWebhook(httpsUrl.replace('/vip', '/hang'), {}, readFileSync(caPath, 'utf8'), '{}', 300);
    assert.equal(silent.failure, 'timeout');
    assert.match(silent.detail, /no answer within 300ms/);
  });

  test('plain HTTP to loopback works', async () => {
    received.length = 0;
    const result = await postWebhook(httpUrl, {}, null, JSON.stringify(context({ event: 'release', cause: 'stopping' })), 2000);
    assert.equal(result.ok, true, result.detail);
    assert.equal((received[0]!.body as HookContext).cause, 'stopping');
  });
});

describe('the VIP lifecycle', () => {
  function tracker(): { lifecycle: VipLifecycle; seen: VipTransition[] } {
    const seen: VipTransition[] = [];
    return { lifecycle: new VipLifecycle((transition) => seen.push(transition)), seen };
  }

  test('acquire names the previous holder and why; refreshes are not transitions', () => {
    const { lifecycle, seen } = tracker();
    lifecycle.won({ from: 'node-2', to: 'node-1', reason: 'the lease of node-2 expired', term: 12, time: '' });
    lifecycle.installed(12, '192.0.2.10');
    lifecycle.installed(12, '192.0.2.10');
    assert.deepEqual(seen, [{ cause: 'acquired', reason: 'the lease of node-2 expired', term: 12, vip: '192.0.2.10', previousHolder: 'node-2' }]);
    assert.equal(lifecycle.holding, true);
    assert.equal(lifecycle.heldTerm, 12);
  });

  test('a removal takes the election\'s cause unless the agent names one', () => {
    const { lifecycle, seen } = tracker();
    lifecycle.losing('fenced', 'before holding: ignored');
    lifecycle.installed(3, '192.0.2.10');
    lifecycle.losing('fenced', 'the fencing deadline passed without an acknowledged renewal');
    lifecycle.removed(null, 'not the elected holder');
    lifecycle.removed(null, 'again: nothing held');
    lifecycle.installed(5, '192.0.2.10');
    lifecycle.losing('handoff', 'planned move to node-2');
    lifecycle.removed(null, 'not the elected holder');
    lifecycle.installed(8, '192.0.2.10');
    lifecycle.losing('lease_lost', 'the lease expired in etcd');
    lifecycle.removed('link_down', 'management interface is down');
    lifecycle.installed(9, '192.0.2.10');
    lifecycle.removed(null, 'not the elected holder');
    assert.deepEqual(
      seen.filter((transition) => transition.cause !== 'acquired').map((transition) => [transition.cause, transition.term, transition.reason]),
      [
        ['fenced', 3, 'the fencing deadline passed without an acknowledged renewal'],
        ['handoff', 5, 'planned move to node-2'],
        ['link_down', 8, 'management interface is down'],
        ['released', 9, 'not the elected holder'],
      ],
    );
    assert.deepEqual(['fenced', 'lease_lost', 'dhcp_lost', 'handoff', 'link_down', 'stopping', 'released', 'acquired'].map((cause) => hookEventOf(cause as VipTransition['cause'])), [
      'fault', 'fault', 'fault', 'release', 'release', 'release', 'release', 'acquire',
    ]);
  });

  test('a planned move reports the election\'s full reason whichever of the converge loop and the handoff removes the VIP', () => {
    for (const agentFirst of [true, false]) {
      const { lifecycle, seen } = tracker();
      lifecycle.installed(4, '192.0.2.10');
      lifecycle.losing('handoff', 'planned move to node-3 requested by admin');
      if (agentFirst) lifecycle.removed('handoff', 'planned move');
      else lifecycle.removed(null, 'not the elected holder');
      lifecycle.removed('handoff', 'planned move');
      assert.deepEqual(seen.slice(1).map((transition) => [transition.cause, transition.reason]), [['handoff', 'planned move to node-3 requested by admin']]);
    }
  });

  test('a move for health is a release with cause health and the failing check in its reason, whichever removes the VIP first', () => {
    assert.equal(hookEventOf('health'), 'release');
    for (const agentFirst of [true, false]) {
      const { lifecycle, seen } = tracker();
      lifecycle.installed(4, '192.0.2.10');
      lifecycle.losing('health', 'health: check api failing: HTTP 503; planned move to node-3 (move ab12)');
      if (agentFirst) lifecycle.removed('health', 'planned move');
      else lifecycle.removed(null, 'not the elected holder');
      assert.deepEqual(seen.slice(1).map((transition) => [transition.cause, transition.reason]), [['health', 'health: check api failing: HTTP 503; planned move to node-3 (move ab12)']]);
    }
  });

  test('a DHCP lease that comes back at the same term is an acquire with no previous holder', () => {
    const { lifecycle, seen } = tracker();
    lifecycle.won({ from: 'node-2', to: 'node-1', reason: 'node-2 released: planned move', term: 20, time: '' });
    lifecycle.installed(20, '192.0.2.61');
    lifecycle.removed('dhcp_lost', 'the DHCP lease expired: no server answered past T2');
    lifecycle.installed(20, '192.0.2.61');
    assert.deepEqual(seen.map((transition) => [transition.cause, transition.previousHolder]), [['acquired', 'node-2'], ['dhcp_lost', null], ['acquired', null]]);
    assert.match(seen[2]!.reason, /back.*no server answered past T2/);
  });
});

test('status says why a node gave the VIP up', () => {
  const failure: HookFailureRecord = {
    node: 'node-1',
    hook: '/usr/local/bin/repoint',
    term: 12,
    reason: 'required acquire hook /usr/local/bin/repoint failed after 2 attempts: exit code 1',
    time: new Date().toISOString(),
    cooldownUntil: new Date().toISOString(),
  };
  const view = describeManagementAddress({
    cluster: 'demo',
    address: '192.0.2.10',
    mode: 'static',
    interface: 'mgmt-br',
    leader: { node: 'node-2', ip: '192.0.2.12', mac: '8c:dc:d4:b5:f0:02', since: new Date().toISOString(), term: 14 },
    hookFailure: failure,
  });
  assert.equal(view.status.message, `held by node-2; node-1 gave the VIP up: ${failure.reason}`);
  assert.deepEqual(view.status.lastHookFailure, failure);
  const plain = describeManagementAddress({ cluster: 'demo', address: '192.0.2.10', mode: 'static', interface: 'mgmt-br', leader: null });
  assert.equal('lastHookFailure' in plain.status, false);
  assert.ok(existsSync(dir));
});
