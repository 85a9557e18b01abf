/**
 * Issue 12: what an idle agent and a one-shot command cost. Wall-clock figures belong to the
 * benchmark; these pin the causes: which modules a command loads, which timers run.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import perfHooks from 'node:perf_hooks';
import { describe, test } from 'node:test';
import { Netlink } from '../../src/holding/netlink';
import { buildProgram } from '../../src/main';
import { AgentMetrics, EVENT_LOOP_SAMPLE_MS } from '../../src/metrics/metrics';

const MAIN = join(__dirname, '../../src/main.js');
const BUNDLE = join(__dirname, '../../vipd.js');

/** The vipd modules (relative to dist/src) a fresh process has loaded after building the CLI for `only`. */
function modulesLoadedFor(only: string | null): string[] {
  const script = `require(${JSON.stringify(MAIN)}).buildProgram(${only === null ? '' : JSON.stringify(only)});
    process.stdout.write(JSON.stringify(Object.keys(require.cache)))`;
  const loaded = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as string[];
  const root = join(__dirname, '../../src/');
  return loaded.filter((path) => path.startsWith(root)).map((path) => path.slice(root.length));
}

describe('a command loads only its own modules', () => {
  test('the whole CLI lists every command, in the same order, and one named command alone', () => {
    const all = ['run', 'status', 'events', 'move', 'cordon', 'uncordon', 'dhcp', 'token', 'ca', 'doctor', 'init', 'join', 'node', 'completion'];
    assert.deepEqual(buildProgram().commands.map((command) => command.name()), all);
    for (const name of all) assert.deepEqual(buildProgram(name).commands.map((command) => command.name()), [name]);
  });

  test('vipd status loads neither the daemon, the API, the doctor nor init', () => {
    const loaded = modulesLoadedFor('status');
    assert.ok(loaded.includes('cli/status.js'));
    for (const unwanted of ['daemon.js', 'api/server.js', 'doctor/command.js', 'cli/init.js', 'cluster/init.js', 'security/ca.js']) {
      assert.ok(!loaded.includes(unwanted), `vipd status loaded ${unwanted}`);
    }
  });

  test('vipd run loads neither the doctor nor init/join', () => {
    const loaded = modulesLoadedFor('run');
    assert.ok(loaded.includes('daemon.js'));
    for (const unwanted of ['doctor/command.js', 'cli/init.js', 'cluster/init.js', 'cli/join.js', 'cli/completion.js']) {
      assert.ok(!loaded.includes(unwanted), `vipd run loaded ${unwanted}`);
    }
  });
});

test('the event-loop delay metric samples every 100 ms, not every 10 ms (an idle agent would wake 100 times a second)', () => {
  const original = perfHooks.monitorEventLoopDelay;
  const resolutions: Array<number | undefined> = [];
  perfHooks.monitorEventLoopDelay = (options) => {
    resolutions.push(options?.resolution);
    return original(options);
  };
  try {
    new AgentMetrics({
      node: 'node-1', cluster: 'demo', mode: 'static', profile: 'default', version: '0.1.0',
      source: { holder: () => false, term: () => null, dhcpLease: () => null },
    });
  } finally {
    perfHooks.monitorEventLoopDelay = original;
  }
  assert.deepEqual(resolutions, [EVENT_LOOP_SAMPLE_MS]);
  assert.ok(EVENT_LOOP_SAMPLE_MS >= 100);
});

test('interfaceByName asks the kernel for one link and answers as the dump does', async () => {
  const netlink = Netlink.open();
  try {
    // Only lo: other links of this shared machine come and go with other people's labs.
    const lo = (await netlink.interfaces()).find((link) => link.name === 'lo');
    assert.ok(lo);
    assert.deepEqual(await netlink.interfaceByName('lo'), lo);
    assert.equal(await netlink.interfaceByName('vipd-no-such0'), null);
    assert.equal(await netlink.interfaceByName('a-name-longer-than-ifnamsiz'), null);
    assert.equal(await netlink.interfaceByName(''), null);
  } finally {
    netlink.close();
  }
});

test('the one-file build (dist/vipd.js, what the package runs) loads no vipd module from dist/src, and runs a command', () => {
  const directory = mkdtempSync(join(tmpdir(), 'vipd-bundle-'));
  try {
    const recorder = join(directory, 'record.js');
    writeFileSync(recorder, "process.on('exit', () => require('fs').writeFileSync(process.env.VIPD_LOADED, JSON.stringify(Object.keys(require.cache))));\n");
    const loadedFile = join(directory, 'loaded.json');
    const output = execFileSync(process.execPath, ['--require', recorder, BUNDLE, 'status', '--help'], { encoding: 'utf8', env: { ...process.env, VIPD_LOADED: loadedFile } });
    assert.match(output, /Usage: vipd status/);
    const loaded = JSON.parse(readFileSync(loadedFile, 'utf8')) as string[];
    const modules = loaded.filter((path) => path.startsWith(join(__dirname, '../../src/')));
    assert.deepEqual(modules, [], 'the one-file build reached into dist/src');
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
