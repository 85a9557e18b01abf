import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { CLIENT_IP, inNamespace, Lab, type LabNode } from '../../lab/lab';
import { VipObserver } from '../../lab/observer';
import { run, waitFor } from '../../lab/shell';
import { ClusterCa } from '../../src/security/ca';
import { MemoryKeyValue } from '../../src/store/kv';
import { assertNeverTwoHolders, explained, singleHolder, startAgentAndWait, stopObserver } from './helpers';

const RECEIVER_PORT = 8443;
const WEBHOOK_SECRET = 'Bearer lab-webhook-secret';
const REQUIRED_HOOK = 'must-not-be-node-1';

/** What the record hook wrote: one file per run, VIPD_* variables as they reached the command. */
type HookEnv = Record<string, string> & { file: string };

/** The webhook receiver's account of one POST. */
interface Delivery {
  authorized: boolean;
  body: { event: string; cause: string; node: string; term: number | null; previousHolder: string | null; vip: string; reason: string };
}

/**
 * Runs in the client namespace: an HTTPS server with a certificate from a throwaway CA,
 * printing one JSON line per POST.
 */
const RECEIVER = `
const https = require('https');
const fs = require('fs');
const [key, cert, host, port, secret] = process.argv.slice(2);
https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (request, response) => {
  let text = '';
  request.on('data', (chunk) => (text += chunk));
  request.on('end', () => {
    process.stdout.write(JSON.stringify({ authorized: request.headers.authorization === secret, body: JSON.parse(text) }) + '\\n');
    response.end('received');
  });
}).listen(Number(port), host, () => process.stdout.write('{"ready":true}\\n'));
`;

describe('hooks and metrics as the VIP moves', { timeout: 400_000 }, () => {
  let lab: Lab;
  let observer: VipObserver;
  let receiver: ChildProcess;
  const deliveries: Delivery[] = [];
  let envDir: string;
  let apiCaPath: string;
  let readToken: string;

  before(async () => {
    lab = await Lab.create({ nodes: 3 });
    envDir = join(lab.dir, 'hook-env');
    mkdirSync(envDir);

    // The webhook receiver, in the client namespace, with its own CA.
    const receiverCa = await ClusterCa.loadOrCreate(new MemoryKeyValue(), 'ca', { cluster: 'hook-receiver' });
    const issued = await receiverCa.issueServingCertificate({ nodeName: 'receiver', nodeIp: CLIENT_IP, vip: CLIENT_IP, fqdn: null });
    const files = { ca: join(lab.dir, 'receiver-ca.pem'), key: join(lab.dir, 'receiver-key.pem'), cert: join(lab.dir, 'receiver-cert.pem'), script: join(lab.dir, 'receiver.js') };
    writeFileSync(files.ca, receiverCa.certificatePem);
    writeFileSync(files.key, issued.privateKey, { mode: 0o600 });
    writeFileSync(files.cert, issued.chain);
    writeFileSync(files.script, RECEIVER);
    receiver = spawn(...inNamespace(lab.clientNs, process.execPath, files.script, files.key, files.cert, CLIENT_IP, String(RECEIVER_PORT), WEBHOOK_SECRET), {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      receiver.once('error', reject);
      createInterface({ input: receiver.stdout! }).on('line', (line) => {
        const parsed = JSON.parse(line) as Delivery | { ready: true };
        if ('ready' in parsed) resolve();
        else deliveries.push(parsed);
      });
    });

    // Hook commands written by the test: one records its environment, one refuses node-1.
    const record = join(lab.dir, 'record-hook.sh');
    writeFileSync(record, `#!/bin/sh
tmp=$(mktemp "${envDir}/.tmp.XXXXXX")
env | grep '^VIPD_' > "$tmp"
mv "$tmp" "${envDir}/$(date +%s%N).$VIPD_NODE.$VIPD_EVENT.env"
echo "recorded $VIPD_EVENT"
`);
    const refuse = join(lab.dir, 'refuse-node-1.sh');
    writeFileSync(refuse, `#!/bin/sh
if [ "$VIPD_NODE" = node-1 ]; then echo "node-1 may not hold the VIP" >&2; exit 1; fi
`);
    chmodSync(record, 0o755);
    chmodSync(refuse, 0o755);
    const hooks = [
      { on: ['acquire', 'release', 'fault'], command: [record], timeout: '5s' },
      { on: ['acquire', 'release', 'fault'], webhook: { url: `https://${CLIENT_IP}:${RECEIVER_PORT}/vip`, headers: { Authorization: WEBHOOK_SECRET }, ca: files.ca }, timeout: '3s' },
      { name: REQUIRED_HOOK, on: ['acquire'], command: [refuse], required: true, retries: 1, backoff: '100ms', cooldown: '2m' },
    ];
    for (const node of lab.nodes) lab.writeConfig(node, { hooks });

    await lab.startEtcd();
    observer = await VipObserver.start(lab.vip, lab.nodes);
    // node-1 comes later, so that it first holds the VIP when the test moves it there.
    lab.startAgent(lab.node('node-2'));
    lab.startAgent(lab.node('node-3'));
    await singleHolder(lab, observer);
    const node = lab.node('node-2');
    const ca = await waitFor('the cluster CA', async () => {
      const result = await lab.vipd(node, ['ca', '--config', node.configPath]);
      return result.code === 0 ? result.stdout : undefined;
    }, 20_000);
    apiCaPath = join(lab.dir, 'api-ca.pem');
    writeFileSync(apiCaPath, ca);
    readToken = (await lab.vipd(node, ['token', 'create', '--role', 'read', '--config', node.configPath])).stdout.trim();
  });

  after(async () => {
    receiver?.kill('SIGKILL');
    try {
      stopObserver(observer);
    } finally {
      await lab?.destroy();
    }
  });

  function hookEnvs(): HookEnv[] {
    return readdirSync(envDir)
      .filter((file) => file.endsWith('.env'))
      .sort()
      .map((file) => {
        const env: HookEnv = { file } as HookEnv;
        for (const line of readFileSync(join(envDir, file), 'utf8').split('\n')) {
          const at = line.indexOf('=');
          if (at > 0) env[line.slice(0, at)] = line.slice(at + 1);
        }
        return env;
      });
  }

  async function hookRun(what: string, match: (env: HookEnv) => boolean, timeoutMs = 20_000): Promise<HookEnv> {
    return await waitFor(`the record hook to run for ${what}`, () => hookEnvs().find(match), timeoutMs, 50);
  }

  async function delivery(what: string, match: (entry: Delivery) => boolean, timeoutMs = 20_000): Promise<Delivery> {
    return await waitFor(`the webhook to receive ${what}`, () => deliveries.find(match), timeoutMs, 50);
  }

  async function status(): Promise<{ status: { holder: string | null; term: number | null; message: string; lastHookFailure?: { node: string; hook: string; reason: string; term: number } } }> {
    const node = lab.node('node-3');
    const result = await lab.vipd(node, ['status', '--config', node.configPath, '-o', 'json']);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout);
  }

  /** Scrapes /metrics over HTTPS from the client, at the VIP or a node's own IP. */
  async function scrape(address: string, token: string | null = readToken): Promise<{ status: number; body: string }> {
    const args = ['netns', 'exec', lab.clientNs, 'curl', '-sS', '--max-time', '3', '--cacert', apiCaPath, '-w', '\n%{http_code}'];
    if (token) args.push('-H', `Authorization: Bearer ${token}`);
    const result = await run('ip', [...args, `https://${address}/metrics`]);
    const lines = result.stdout.split('\n');
    return { status: Number(lines.pop()), body: lines.join('\n') };
  }

  function sample(text: string, name: string): number | undefined {
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.slice(name.length + 1));
  }

  function scrapedNode(text: string): string | undefined {
    return /^vipd_info\{node="([^"]+)"/m.exec(text)?.[1];
  }

  /** Metrics through the VIP, once they come from `holder` (the client's neighbour entry may lag a move). */
  async function metricsThroughVip(holder: LabNode): Promise<string> {
    return await waitFor(`/metrics through the VIP to come from ${holder.name}`, async () => {
      const scraped = await scrape(lab.vip);
      return scraped.status === 200 && scrapedNode(scraped.body) === holder.name ? scraped.body : undefined;
    }, 20_000, 100);
  }

  async function move(to: LabNode): Promise<void> {
    const node = lab.node('node-3');
    const result = await lab.vipd(node, ['move', '--to', to.name, '--config', node.configPath]);
    assert.equal(result.code, 0, result.stderr);
  }

  test('the first holder runs its acquire hooks with the VIP, node, MAC, term and reason', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      const { status: view } = await status();
      const term = String(view.term);
      const env = await hookRun(`${holder.name}'s acquire`, (entry) => entry['VIPD_NODE'] === holder.name && entry['VIPD_EVENT'] === 'acquire' && entry['VIPD_TERM'] === term);
      assert.equal(env['VIPD_VIP'], lab.vip);
      assert.equal(env['VIPD_NODE_IP'], holder.ip);
      assert.equal(env['VIPD_MAC'], await lab.mac(holder));
      assert.equal(env['VIPD_CAUSE'], 'acquired');
      assert.equal(env['VIPD_CLUSTER'], 'lab');
      // The cluster's first holder took a key nobody held; a busy machine may have made it lose and retake it.
      if (hookEnvs()[0]?.file === env.file) {
        assert.equal(env['VIPD_PREVIOUS_HOLDER'], '');
        assert.equal(env['VIPD_REASON'], 'no node held the VIP');
      } else {
        assert.match(env['VIPD_REASON'] ?? '', /expired|released|no node held/);
      }

      const posted = await delivery(`${holder.name}'s acquire`, (entry) => entry.body.node === holder.name && entry.body.event === 'acquire' && entry.body.term === view.term);
      assert.equal(posted.authorized, true, 'the configured Authorization header arrived');
      assert.equal(posted.body.vip, lab.vip);
      assert.equal(posted.body.reason, env['VIPD_REASON']);
      assert.equal(posted.body.previousHolder ?? '', env['VIPD_PREVIOUS_HOLDER']);

      // Every run lands in the capped hook history in etcd, with its output and never the header.
      const history = await waitFor('the hook history in etcd', async () => {
        const text = await lab.etcdctl('get', '--prefix', '/vipd/lab/hooks/', '--print-value-only');
        const all = text.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as { node: string; hook: string; event: string; term: number; outcome: string; stdout: string });
        const runs = all.filter((run) => run.node === holder.name && run.event === 'acquire' && run.term === view.term);
        return new Set(runs.map((run) => run.hook)).size === 3 ? { text, runs } : undefined;
      }, 20_000);
      assert.ok(history.runs.every((run) => run.outcome === 'ok'), JSON.stringify(history.runs));
      assert.ok(history.runs.some((run) => run.stdout === 'recorded acquire\n'));
      assert.ok(!history.text.includes('lab-webhook-secret'));
      assert.ok(!readFileSync(holder.logPath, 'utf8').includes('lab-webhook-secret'), 'the webhook secret is never logged');
    }));

  test('/metrics through the VIP, with a read token, shows the holder', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      assert.equal((await scrape(lab.vip, null)).status, 401);
      const text = await metricsThroughVip(holder);
      const { status: view } = await status();
      assert.equal(sample(text, 'vipd_holder'), 1);
      assert.equal(sample(text, 'vipd_term'), view.term);
      assert.ok(sample(text, 'vipd_transitions_total{reason="acquired"}')! >= 1);
      assert.ok(sample(text, 'vipd_announcements_total')! >= 1);
      assert.ok(Math.abs(sample(text, 'vipd_last_announcement_timestamp_seconds')! - Date.now() / 1000) < 60);
      assert.ok(sample(text, 'vipd_renewal_duration_seconds_count{kind="lease"}')! >= 1);
      const margin = sample(text, 'vipd_fencing_margin_seconds')!;
      assert.ok(margin > 0 && margin <= 2, `margin ${margin}`);
      assert.ok(sample(text, 'vipd_hook_runs_total{event="acquire",outcome="ok"}')! >= 2);
      const follower = lab.nodes.find((node) => node !== holder && node.agent)!;
      const other = await scrape(follower.ip);
      assert.equal(other.status, 200);
      assert.equal(sample(other.body, 'vipd_holder'), 0);
      assert.equal(sample(other.body, 'vipd_term'), view.term);
    }));

  test('a planned move: release (handoff) on the old holder, acquire with the previous holder on the new one; metrics follow', () =>
    explained(lab, async () => {
      const from = await singleHolder(lab, observer);
      const fromTerm = String((await status()).status.term);
      const to = lab.nodes.find((node) => node !== from && node.name !== 'node-1')!;
      await move(to);
      const released = await hookRun(`${from.name}'s release`, (env) => env['VIPD_NODE'] === from.name && env['VIPD_EVENT'] === 'release' && env['VIPD_TERM'] === fromTerm);
      assert.equal(released['VIPD_CAUSE'], 'handoff');
      assert.match(released['VIPD_REASON'] ?? '', new RegExp(`planned move to ${to.name}`));
      const acquired = await hookRun(`${to.name}'s acquire`, (env) => env['VIPD_NODE'] === to.name && env['VIPD_EVENT'] === 'acquire' && Number(env['VIPD_TERM']) > Number(fromTerm));
      assert.equal(acquired['VIPD_PREVIOUS_HOLDER'], from.name);
      assert.match(acquired['VIPD_REASON'] ?? '', /planned move/);
      await delivery(`${from.name}'s release`, (entry) => entry.body.node === from.name && entry.body.event === 'release' && entry.body.cause === 'handoff');

      const text = await metricsThroughVip(to);
      assert.equal(sample(text, 'vipd_holder'), 1);
      assert.equal(sample(text, 'vipd_term'), Number(acquired['VIPD_TERM']));
      const old = await scrape(from.ip);
      assert.equal(sample(old.body, 'vipd_holder'), 0);
      assert.equal(sample(old.body, 'vipd_transitions_total{reason="handoff"}'), 1);
      assertNeverTwoHolders(observer);
    }));

  test('link down: the holder releases with cause link_down', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      const term = String((await status()).status.term);
      await lab.setLink(holder, false);
      try {
        const env = await hookRun(`${holder.name}'s release on link down`, (entry) => entry['VIPD_NODE'] === holder.name && entry['VIPD_EVENT'] === 'release' && entry['VIPD_TERM'] === term);
        assert.equal(env['VIPD_CAUSE'], 'link_down');
        assert.equal(env['VIPD_REASON'], 'management interface is down');
        await waitFor('another node to hold the VIP', () => observer.currentHolders().some((name) => name !== holder.name), 20_000, 20);
      } finally {
        await lab.setLink(holder, true);
      }
      assertNeverTwoHolders(observer);
    }));

  test('etcd stopped: the holder\'s fault hooks run when its fencing deadline passes', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      const term = String((await status()).status.term);
      const fencedBefore = sample((await scrape(holder.ip)).body, 'vipd_transitions_total{reason="fenced"}')!;
      await lab.stopEtcd('SIGKILL');
      try {
        const env = await hookRun(`${holder.name}'s fault`, (entry) => entry['VIPD_NODE'] === holder.name && entry['VIPD_EVENT'] === 'fault' && entry['VIPD_TERM'] === term);
        assert.equal(env['VIPD_CAUSE'], 'fenced');
        assert.match(env['VIPD_REASON'] ?? '', /fencing deadline passed/);
        await delivery(`${holder.name}'s fault`, (entry) => entry.body.node === holder.name && entry.body.event === 'fault' && entry.body.cause === 'fenced');
      } finally {
        await lab.startEtcd();
      }
      await singleHolder(lab, observer, 30_000);
      const text = await waitFor(`${holder.name}'s metrics`, async () => {
        const scraped = await scrape(holder.ip);
        return scraped.status === 200 ? scraped.body : undefined;
      }, 20_000, 200);
      assert.equal(sample(text, 'vipd_transitions_total{reason="fenced"}'), fencedBefore + 1);
      assertNeverTwoHolders(observer);
    }));

  test('a required acquire hook fails on node-1: it gives the VIP up, another node takes it, status says why', () =>
    explained(lab, async () => {
      const node1 = lab.node('node-1');
      await startAgentAndWait(lab, node1);
      await singleHolder(lab, observer);
      await move(node1);
      const acquired = await hookRun('node-1\'s acquire', (env) => env['VIPD_NODE'] === 'node-1' && env['VIPD_EVENT'] === 'acquire');
      const released = await hookRun('node-1\'s release', (env) => env['VIPD_NODE'] === 'node-1' && env['VIPD_EVENT'] === 'release');
      assert.equal(released['VIPD_TERM'], acquired['VIPD_TERM']);
      assert.equal(released['VIPD_CAUSE'], 'released');
      assert.match(released['VIPD_REASON'] ?? '', new RegExp(`required acquire hook ${REQUIRED_HOOK} failed after 2 attempts: exit code 1`));
      const next = await waitFor('another node to take the VIP', () => {
        const holders = observer.currentHolders();
        return holders.length === 1 && holders[0] !== 'node-1' ? holders[0] : undefined;
      }, 20_000, 20);
      await lab.waitClientReaches(next);
      await hookRun(`${next}'s acquire after node-1`, (env) => env['VIPD_NODE'] === next && env['VIPD_EVENT'] === 'acquire' && env['VIPD_PREVIOUS_HOLDER'] === 'node-1');

      const view = await waitFor('status to show the hook failure', async () => {
        const current = (await status()).status;
        return current.holder === next && current.lastHookFailure ? current : undefined;
      }, 20_000);
      assert.equal(view.lastHookFailure?.node, 'node-1');
      assert.equal(view.lastHookFailure?.hook, REQUIRED_HOOK);
      assert.equal(String(view.lastHookFailure?.term), acquired['VIPD_TERM']);
      assert.match(view.message, new RegExp(`^held by ${next}; node-1 gave the VIP up: required acquire hook ${REQUIRED_HOOK} failed after 2 attempts: exit code 1$`));
      const table = await lab.vipd(lab.node(next), ['status', '--config', lab.node(next).configPath]);
      assert.match(table.stdout, /NOTE\s+.*node-1 gave the VIP up/);

      const text = await waitFor('node-1\'s metrics', async () => {
        const scraped = await scrape(node1.ip);
        return scraped.status === 200 && sample(scraped.body, 'vipd_transitions_total{reason="released"}') === 1 ? scraped.body : undefined;
      }, 20_000, 100);
      assert.equal(sample(text, 'vipd_holder'), 0);
      assert.equal(sample(text, 'vipd_transitions_total{reason="acquired"}'), 1);
      assert.equal(sample(text, 'vipd_hook_runs_total{event="acquire",outcome="failed"}'), 1);
      assert.equal(sample(text, 'vipd_hook_attempt_failures_total{event="acquire",failure="exit"}'), 2);
      assertNeverTwoHolders(observer);
    }));

  test('during its cooldown node-1 does not take the VIP back, even when it falls vacant; SIGTERM runs release hooks', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      assert.notEqual(holder.name, 'node-1');
      const term = String((await status()).status.term);
      assert.equal(await lab.stopAgent(holder, 'SIGTERM'), 0);
      const env = hookEnvs().find((entry) => entry['VIPD_NODE'] === holder.name && entry['VIPD_EVENT'] === 'release' && entry['VIPD_TERM'] === term);
      assert.ok(env, 'the release hook ran before the agent exited');
      assert.equal(env['VIPD_CAUSE'], 'stopping');
      const third = lab.nodes.find((node) => node !== holder && node.name !== 'node-1')!;
      const next = await waitFor('a new holder', () => {
        const holders = observer.currentHolders();
        return holders.length === 1 ? holders[0] : undefined;
      }, 20_000, 20);
      assert.equal(next, third.name, 'the remaining eligible node took the VIP, not node-1');
      assert.equal(observer.intervals.filter((interval) => interval.node === 'node-1').length, 1, 'node-1 held the VIP only once');
      assertNeverTwoHolders(observer);
    }));
});
