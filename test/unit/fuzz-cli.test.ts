/**
 * Hostile command lines for `vipd` (lab/chaos/fuzz/cli-fuzz.ts), seeded: FUZZ_SEED=N repeats
 * a run. Most run in-process through buildProgram(); a few through the built binary, for
 * the exit codes. Nothing reaches past 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { describeFailures } from '../../lab/chaos/fuzz/common';
import { pinOpenFindings, unpinnedFindings } from './fuzz-pins';
import { createCliFixtures, fuzzCli, runBinary, runInProcess } from '../../lab/chaos/fuzz/cli-fuzz';
import { rmSync } from 'node:fs';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261123);
/** Findings known and not fixed yet, each with a todo test (none open now). */
const PINNED = pinOpenFindings('cli', []);
const CASES = Number(process.env['FUZZ_CASES'] ?? 200);
const CLI = join(__dirname, '..', '..', 'src', 'main.js');

test(`vipd arguments: ${CASES} hostile command lines, plus 6 through the binary, each end in a clear error (seed ${SEED})`, async () => {
  const summary = await fuzzCli({ seed: SEED, cases: CASES, binaryCases: 6, cliPath: CLI });
  assert.equal(summary.cases, CASES + 6);
  assert.equal(summary.failures.length, 0, `seed ${SEED} (replay with FUZZ_SEED=${SEED}, or npm run fuzz -- --target cli --seed ${SEED} --case N):\n${describeFailures(summary)}`);
  assert.equal(unpinnedFindings(summary, PINNED), '', `seed ${SEED}: findings no todo test pins`);
});

test('a group- or world-writable config is refused by every command that reads it, naming --config and the mode', async (t) => {
  const fixtures = createCliFixtures();
  t.after(() => rmSync(fixtures.dir, { recursive: true, force: true }));
  for (const args of [['status', '--config', fixtures.worldWritable], ['token', 'list', '--config', fixtures.worldWritable], ['run', '--config', fixtures.worldWritable]]) {
    const outcome = await runInProcess(args);
    assert.equal(outcome.kind, 'input', `${args.join(' ')}: ${outcome.detail}`);
    assert.match(outcome.detail, /^--config: .*world-writable\.yaml is writable by its group and every user \(mode 0666\)/);
  }
  const binary = await runBinary(CLI, ['run', '--config', fixtures.worldWritable]);
  assert.equal(binary.code, 2);
  assert.match(binary.stderr, /^vipd: --config: .* is writable by its group and every user \(mode 0666\); run: chmod go-w /);
});
