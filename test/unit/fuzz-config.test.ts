/**
 * A few hundred hostile config documents and files (lab/chaos/fuzz/config-fuzz.ts), seeded:
 * FUZZ_SEED=N repeats a run. `npm run fuzz` runs thousands.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, resolveConfig } from '../../src/config/config';
import { describeFailures } from '../../lab/chaos/fuzz/common';
import { configDocument, configText, fuzzConfig } from '../../lab/chaos/fuzz/config-fuzz';
import { Prng } from '../../lab/chaos/prng';
import { pinOpenFindings, unpinnedFindings } from './fuzz-pins';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261123);
const CASES = Number(process.env['FUZZ_CASES'] ?? 400);

/** Findings known and not fixed yet, each with a todo test (none open now). */
const PINNED = pinOpenFindings('config', []);

test(`config loader: ${CASES} hostile documents and YAML files end in a usable config or an InputError naming the field (seed ${SEED})`, async (t) => {
  const summary = await fuzzConfig({ seed: SEED, cases: CASES });
  assert.equal(summary.cases, CASES);
  assert.ok(summary.rejected > CASES / 2, 'most hostile documents are refused');
  assert.equal(summary.failures.length, 0, `seed ${SEED} (replay with FUZZ_SEED=${SEED}, or npm run fuzz -- --target config --seed ${SEED} --case N):\n${describeFailures(summary)}`);
  // A finding is a bug that is not a crash: it fails here unless a todo test pins its kind.
  assert.equal(unpinnedFindings(summary, PINNED), '', `seed ${SEED}: findings no todo test pins`);
  // Timings say nothing about correctness here (the benchmark measures speed).
  for (const note of summary.notes) t.diagnostic(`note ${note.kind}: case ${note.index}, ${note.detail}`);
});

const BASE = {
  cluster: 'lab',
  node: { name: 'node-1', interface: 'mgmt-br' },
  vip: { mode: 'static', address: '192.0.2.10' },
  etcd: { endpoints: ['http://192.0.2.2:2379'] },
};

/** Refused with an InputError (anything else is a different bug); the base config alone loads. */
function refused(extra: Record<string, unknown>): boolean {
  resolveConfig(BASE);
  try {
    resolveConfig({ ...BASE, ...extra });
    return false;
  } catch (error) {
    return (error as Error).name === 'InputError';
  }
}

/** The InputError's message for the base config with `extra` merged in ('' when it loads). */
function refusal(extra: Record<string, unknown>): string {
  try {
    resolveConfig({ ...BASE, ...extra });
    return '';
  } catch (error) {
    assert.equal((error as Error).name, 'InputError');
    return (error as Error).message;
  }
}

// Found by this fuzzer (setInterval turned 100000m into 1 ms: a gratuitous-ARP flood); fixed by bounding durations.
test('durations longer than Node timers can hold are refused', () => {
  assert.ok(refused({ announce: { refreshInterval: '100000m' } }), 'announce.refreshInterval: 100000m');
  assert.ok(refused({ announce: { burstInterval: '100000m' } }), 'announce.burstInterval: 100000m');
  assert.ok(refused({ election: { leaseTTL: '9999999999s', renewInterval: '2147483648ms' } }), 'election.renewInterval: 2147483648ms');
});

// Found by this fuzzer (a 10 KB value came back as a 10 KB message); fixed in schema-check.ts.
test('a 10 KB cluster name is refused naming the field, and the message shows only its start', () => {
  assert.throws(
    () => resolveConfig({ ...BASE, cluster: 'a'.repeat(10_000) }),
    (error: Error & { field?: unknown }) => {
      assert.equal(error.name, 'InputError');
      assert.equal(error.field, 'cluster');
      assert.match(error.message, /^cluster: must be a cluster name of lowercase letters, digits and "-", at most 63 \(got "a{60}…"\)$/);
      return true;
    },
  );
});

// Found by this fuzzer (Schema.check() serialized the value and overflowed the stack); fixed in schema-check.ts.
test('a value nested thousands of levels deep gets an InputError, not a RangeError', () => {
  let deep: unknown = 'x';
  for (let i = 0; i < 20_000; i += 1) deep = [deep];
  assert.throws(() => resolveConfig({ ...BASE, etcd: deep }), (error: Error) => error.name === 'InputError' && /^etcd: /.test(error.message));
});

// Found by this fuzzer: a zero margin left no time to remove the address (docs/safety.md, assumption 3).
test('a fencing margin under 10 ms is refused, naming the field', () => {
  assert.match(refusal({ election: { fencingMargin: '0ms' } }), /^election\.fencingMargin: must be at least 10ms/);
  assert.match(refusal({ election: { profile: 'fast', fencingMargin: '9ms' } }), /^election\.fencingMargin: /);
});

// Found by this fuzzer: the schema's URL pattern let any port digits through.
test('an etcd endpoint with a port outside 1 to 65535 is refused, naming the entry', () => {
  assert.match(refusal({ etcd: { endpoints: ['http://192.0.2.11:2379', 'http://x:-1'] } }), /^etcd\.endpoints\[1\]: /);
  assert.match(refusal({ etcd: { endpoints: ['http://x:65536'] } }), /^etcd\.endpoints\[0\]: /);
});

// Found by this fuzzer: an unknown YAML tag was read as a plain string with only a process warning.
test('a config file with an unknown YAML tag or over 1 MiB is refused with the line or the size', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vipd-fuzz-config-'));
  try {
    const tagged = join(dir, 'tagged.yaml');
    writeFileSync(tagged, 'cluster: lab\nnode: { interface: eth0 }\nvip: { mode: static, address: !custom 192.0.2.10 }\netcd: { endpoints: [http://192.0.2.11:2379] }\n', { mode: 0o600 });
    assert.throws(() => loadConfig(tagged), /not valid YAML at line 3: Unresolved tag: !custom$/);
    const huge = join(dir, 'huge.yaml');
    writeFileSync(huge, `# ${'x'.repeat(2 * 1024 * 1024)}\n`, { mode: 0o600 });
    assert.throws(() => loadConfig(huge), /--config: cannot read .*: it is \d+ bytes; a config is at most 1048576$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Found by this fuzzer (escape sequences from a config file reached the terminal); fixed in schema-check.ts.
test('unknown field names are not echoed with raw control characters', () => {
  let message = '';
  try {
    resolveConfig({ ...BASE, vip: { ...BASE.vip, '\u001b[31mred': 1 } });
  } catch (error) {
    message = (error as Error).message;
  }
  assert.match(message, /unknown field/);
  assert.doesNotMatch(message, /[\u0000-\u001f\u007f]/);
});

// Found by this fuzzer at its default seed (case 12, a file of random bytes): the YAML
// parser's error quoted the token it choked on, control bytes and all; fixed in config.ts.
test('a YAML syntax error names the line and carries no raw control characters', async (t) => {
  const replay = await fuzzConfig({ seed: 20261123, first: 12, cases: 1 });
  assert.deepEqual([replay.failures, replay.findings], [[], []]);
  // The same bytes, made the way the fuzzer makes them, loaded here to read the message.
  const rng = new Prng(20261123).fork('config').fork(12);
  const doc = configDocument(rng);
  assert.ok(rng.chance(0.5), 'case 12 goes through a file');
  const bytes = configText(rng, doc);
  assert.match(bytes.toString('latin1'), /[\u0000-\u0008\u000b-\u001f\u007f]/, 'the file holds control bytes');
  const dir = mkdtempSync(join(tmpdir(), 'vipd-fuzz-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'case-12.yaml');
  writeFileSync(path, bytes, { mode: 0o600 });
  assert.throws(() => loadConfig(path), (error: Error) => {
    assert.equal(error.name, 'InputError');
    assert.match(error.message, /is not valid YAML at line \d+: Unexpected scalar token in YAML stream: "/);
    assert.doesNotMatch(error.message, /[\u0000-\u001f\u007f-\u009f]/);
    assert.ok(error.message.length < 400, `${error.message.length} characters`);
    return true;
  });
});
