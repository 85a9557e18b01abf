import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import type { Lab, LabNode } from '../../lab/lab';
import type { FloodReport } from '../../lab/flood';
import type { VipObserver } from '../../lab/observer';
import { run, waitFor } from '../../lab/shell';
import { assertNeverTwoHolders, clusterCa, explained, singleHolder, useLab } from './helpers';

const FLOOD = join(__dirname, '..', '..', 'lab', 'flood.js');
const RENEWALS = 'vipd_renewal_duration_seconds_count{kind="lease"}';

describe('a flood of the API (bad tokens, event streams, idle connections) never moves or drops the VIP', { timeout: 300_000 }, () => {
  let lab: Lab;
  let observer: VipObserver;
  let caPath: string;
  let readToken: string;

  useLab({ nodes: 3 }, (fixture) => ({ lab, observer } = fixture));

  before(async () => {
    await singleHolder(lab, observer);
    const node = lab.nodes[0]!;
    caPath = (await clusterCa(lab)).path;
    readToken = (await lab.vipd(node, ['token', 'create', '--role', 'read', '--config', node.configPath])).stdout.trim();
  });

  /** The holder's lease renewals, scraped from another node (the flooding client gets throttled). */
  async function renewals(holder: LabNode): Promise<number> {
    const from = lab.nodes.find((node) => node.name !== holder.name)!;
    return await waitFor(`/metrics from ${holder.name}`, async () => {
      const result = await run('ip', ['netns', 'exec', from.namespace, 'curl', '-sS', '--max-time', '3', '--cacert', caPath, '-H', `Authorization: Bearer ${readToken}`, `https://${holder.ip}/metrics`]);
      const line = result.stdout.split('\n').find((candidate) => candidate.startsWith(`${RENEWALS} `));
      return line === undefined ? undefined : Number(line.slice(RENEWALS.length + 1));
    }, 20_000, 200);
  }

  test('the holder keeps the VIP and renews through the flood; each limit holds', (t) =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      const intervalsBefore = observer.intervals.length;
      const renewedBefore = await renewals(holder);

      const plan = { target: lab.vip, ca: caPath, readToken, streams: 100, idle: 100, badMs: 3000 };
      const flood = await run('ip', ['netns', 'exec', lab.clientNs, process.execPath, FLOOD, JSON.stringify(plan)]);
      assert.equal(flood.code, 0, flood.stderr);
      const report = JSON.parse(flood.stdout) as FloodReport;
      t.diagnostic(`flood: ${JSON.stringify(report)}`);

      // Event streams: one token gets at most its share (8), the rest 503 or the per-IP connection cap (32).
      assert.ok(report.streams.ok >= 1 && report.streams.ok <= 8, JSON.stringify(report.streams));
      // Idle TCP connections: beyond 32 closed at accept; the rest dropped at the TLS handshake timeout (5 s), none held.
      assert.equal(report.idle.stillOpen, 0, JSON.stringify(report.idle));
      assert.ok(report.idle.closedAtAccept >= 100 - 32, JSON.stringify(report.idle));
      // Bad tokens: 401 for the first ten, then 429 with Retry-After.
      assert.ok(report.bad.unauthorized <= 10 && report.bad.throttled > 0, JSON.stringify(report.bad));
      assert.ok(Number(report.bad.retryAfter) >= 1, JSON.stringify(report.bad));

      // The holder renewed all along and the VIP never moved or dropped.
      const renewedAfter = await waitFor('renewals after the flood', async () => {
        const count = await renewals(holder);
        return count > renewedBefore ? count : undefined;
      }, 20_000, 200);
      t.diagnostic(`lease renewals on ${holder.name}: ${renewedBefore} before, ${renewedAfter} after`);
      assert.deepEqual(observer.currentHolders(), [holder.name]);
      // On failure, the holder's own account of it: its log without the request lines.
      const agentLog = (): string => readFileSync(holder.logPath, 'utf8').split('\n').filter((line) => !line.includes('"request completed"')).slice(-25).join('\n');
      assert.equal(observer.intervals.length, intervalsBefore, `no new holding interval: the VIP never moved or dropped\n${agentLog()}`);
      assertNeverTwoHolders(observer);
      const ping = await run('ip', ['netns', 'exec', lab.nodes.find((node) => node.name !== holder.name)!.namespace, 'curl', '-sS', '--max-time', '3', '--cacert', caPath, `https://${holder.ip}/ping`]);
      assert.match(ping.stdout, /"ok"/, 'the API still answers others');
    }));
});
