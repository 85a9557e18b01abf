/**
 * Hostile requests to every API endpoint through fastify.inject (lab/chaos/fuzz/api-fuzz.ts),
 * against the in-memory agent of test/unit/fakes.ts, seeded: FUZZ_SEED=N repeats a run.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeFailures } from '../../lab/chaos/fuzz/common';
import { pinOpenFindings, unpinnedFindings } from './fuzz-pins';
import { fuzzApi } from '../../lab/chaos/fuzz/api-fuzz';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261123);
/** Findings known and not fixed yet, each with a todo test (none open now). */
const PINNED = pinOpenFindings('api', []);
const CASES = Number(process.env['FUZZ_CASES'] ?? 400);

test(`API: ${CASES} hostile requests get a 2xx or a JSON 4xx, auth holds, refused requests change nothing (seed ${SEED})`, async () => {
  const summary = await fuzzApi({ seed: SEED, cases: CASES });
  assert.equal(summary.cases, CASES);
  assert.ok(summary.rejected > CASES / 3, 'most hostile requests are refused');
  assert.equal(summary.failures.length, 0, `seed ${SEED} (replay with FUZZ_SEED=${SEED}, or npm run fuzz -- --target api --seed ${SEED} --case N):\n${describeFailures(summary)}`);
  assert.equal(unpinnedFindings(summary, PINNED), '', `seed ${SEED}: findings no todo test pins`);
});

// Found by this fuzzer (10 KB of brackets answered 500: the message serialized the value); fixed in schema-check.ts.
test('a JSON body nested thousands of levels deep under a field gets a 400, not a 500', async (t) => {
  const { createApiWorld } = await import('./fakes');
  // Who may do what, not the per-IP backoff (tested in api.test.ts): hostile tokens are this fuzzer's bread.
  const world = await createApiWorld({ authFailures: { maxFailures: 1_000_000 } });
  t.after(async () => {
    await world.app.close();
    world.certificates.stop();
  });
  const depth = 5000;
  const response = await world.app.inject({
    method: 'POST',
    url: '/v1/management-address/move',
    headers: { authorization: `Bearer ${world.adminToken}`, 'content-type': 'application/json' },
    payload: `{"to": ${'['.repeat(depth)}${']'.repeat(depth)}}`,
  });
  assert.equal(response.statusCode, 400, response.body);
});
