/**
 * The short chaos run: about 30 seeded faults on 3 nodes, every invariant checked throughout
 * (lab/chaos/runner.ts). CHAOS_SEED and CHAOS_FAULTS change the run; a failure prints the
 * seed and the command that repeats it (`npm run chaos -- --seed N --faults K --nodes 3`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_OPTIONS, formatReport, runChaos } from '../../lab/chaos/runner';

const SEED = Number(process.env['CHAOS_SEED'] ?? 20261123);
const FAULTS = Number(process.env['CHAOS_FAULTS'] ?? 30);

test(`chaos: ${FAULTS} seeded faults on 3 nodes, no invariant violated (seed ${SEED})`, { timeout: 15 * 60_000 }, async (t) => {
  const log: string[] = [];
  const report = await runChaos({
    ...DEFAULT_OPTIONS,
    seed: SEED,
    faults: FAULTS,
    nodes: 3,
    // The etcd snapshot checks the tokens after every fault; the CLI listing every 5th keeps the run short.
    tokenCheckEvery: 5,
    log: (line) => log.push(line),
  });
  const summary = formatReport(report);
  for (const line of summary.split('\n')) if (line.trim()) t.diagnostic(line);
  assert.equal(
    report.violations.length,
    0,
    `${summary}\n\nthe run, step by step:\n${log.join('\n')}\n\nrepeat it with: ${report.reproduce}`,
  );
  // A skipped fault (its target was not running) did nothing: every step must have injected one.
  const applied = report.faults.filter((fault) => fault.skipped === null);
  assert.equal(new Set(applied.map((fault) => fault.step)).size, FAULTS, `steps without an injected fault: ${JSON.stringify(report.faults.filter((fault) => fault.skipped !== null))}`);
  assert.equal(report.overlaps, 0);
  assert.equal(report.twoMacRounds, 0);
});
