import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { before, describe, test } from 'node:test';
import { inNamespace, Lab, type LabNode } from '../../lab/lab';
import { VipObserver } from '../../lab/observer';
import { run, waitFor } from '../../lab/shell';
import { assertNeverTwoHolders, clusterCa, explained, singleHolder, startAgentAndWait , useLab } from './helpers';

const FQDN = 'vip.lab.example';
const ARTIFACTS = resolve(__dirname, '..', '..', '..', '.test-artifacts');

interface ManagementAddressJson {
  metadata: { annotations: Record<string, string> };
  status: { holder: string | null; term: number | null; caFingerprint?: string };
}

describe('the HTTPS API and dashboard through the management address', { timeout: 300_000 }, () => {
  let lab: Lab;
  let observer: VipObserver;
  let caPath: string;
  let fingerprint: string;
  let adminToken: string;
  let readToken: string;

  useLab({ nodes: 3, config: { api: { fqdn: FQDN } } }, (fixture) => ({ lab, observer } = fixture));

  before(async () => {
    await singleHolder(lab, observer);
    const node = lab.nodes[0]!;
    ({ path: caPath, fingerprint } = await clusterCa(lab));
    adminToken = (await lab.vipd(node, ['token', 'create', '--role', 'admin', '--config', node.configPath])).stdout.trim();
    readToken = (await lab.vipd(node, ['token', 'create', '--role', 'read', '--config', node.configPath])).stdout.trim();
  });


  /** curl from the client, trusting only the cluster CA. */
  async function curl(path: string, options: { token?: string; method?: string; body?: unknown; host?: string } = {}): Promise<{ code: number; status: number; body: string }> {
    const args = ['netns', 'exec', lab.clientNs, 'curl', '-sS', '--max-time', '3', '--cacert', caPath, '-w', '\n%{http_code}'];
    if (options.token) args.push('-H', `Authorization: Bearer ${options.token}`);
    if (options.method) args.push('-X', options.method);
    if (options.body !== undefined) args.push('-H', 'Content-Type: application/json', '--data', JSON.stringify(options.body));
    const result = await run('ip', [...args, `https://${options.host ?? lab.vip}${path}`]);
    const lines = result.stdout.split('\n');
    return { code: result.code, status: Number(lines.pop()), body: lines.join('\n') };
  }

  async function apiHolder(): Promise<string | null> {
    const result = await curl('/v1/management-address', { token: readToken });
    return result.status === 200 ? (JSON.parse(result.body) as ManagementAddressJson).status.holder : null;
  }

  async function untilApiShows(holder: string): Promise<void> {
    await waitFor(`the API through the VIP to show ${holder}`, async () => (await apiHolder()) === holder, 20_000, 100);
  }

  test('curl --cacert reaches /ping and the management address through the VIP', () =>
    explained(lab, async () => {
      const ping = await curl('/ping');
      assert.equal(ping.status, 200, ping.body);
      assert.deepEqual(JSON.parse(ping.body), { status: 'ok' });
      const holder = await singleHolder(lab, observer);
      await untilApiShows(holder.name);
      const view = JSON.parse((await curl('/v1/management-address', { token: readToken })).body) as ManagementAddressJson;
      assert.equal(view.metadata.annotations['kube-vip.io/vipHost'], holder.name);
      assert.equal(view.status.caFingerprint, fingerprint);
    }));

  test('the certificate names the VIP and the FQDN, so curl by name verifies too', () =>
    explained(lab, async () => {
      const result = await run('ip', ['netns', 'exec', lab.clientNs, 'curl', '-sS', '--max-time', '3', '--cacert', caPath, '--resolve', `${FQDN}:443:${lab.vip}`, `https://${FQDN}/ping`]);
      assert.equal(result.code, 0, result.stderr);
    }));

  test('no token, a wrong token, or a read token on a move are refused without leaking anything', () =>
    explained(lab, async () => {
      const none = await curl('/v1/nodes');
      assert.equal(none.status, 401);
      const wrong = await curl('/v1/nodes', { token: `${adminToken.slice(0, -4)}AAAA` });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body, none.body, 'the same answer for a missing and a wrong token');
      const readMove = await curl('/v1/management-address/move', { token: readToken, method: 'POST', body: { to: 'node-1' } });
      assert.equal(readMove.status, 403);
    }));

  test('after a failover (holder SIGKILL) the API answers through the VIP from the new holder', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      await lab.stopAgent(holder, 'SIGKILL');
      const next = await waitFor('a new holder', () => observer.currentHolders().find((name) => name !== holder.name), 20_000, 20);
      await untilApiShows(next);
      assert.equal((await curl('/ping')).status, 200);
      await startAgentAndWait(lab, holder);
      assertNeverTwoHolders(observer);
    }));

  test('a planned move through the API, and through `vipd move --server` with the CA pinned by fingerprint', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      const target = lab.nodes.find((node) => node !== holder)!;
      // Through the VIP, from the client: the holder answering is the node giving the VIP up, and
      // its answer (202, with an id) must arrive before the VIP leaves.
      const moved = await curl('/v1/management-address/move', { token: adminToken, method: 'POST', body: { to: target.name } });
      assert.deepEqual([moved.code, moved.status], [0, 202], `move answered ${moved.status} (curl ${moved.code}): ${moved.body}`);
      const accepted = JSON.parse(moved.body) as { id: string; state: string; from: string; to: string };
      assert.deepEqual([accepted.state, accepted.from, accepted.to], ['accepted', holder.name, target.name]);
      await untilApiShows(target.name);
      const afterCurl = JSON.parse((await curl('/v1/events', { token: readToken })).body) as { events: Array<{ to: string; reason: string }> };
      assert.ok(afterCurl.events.some((event) => event.to === target.name && event.reason.includes(`(move ${accepted.id})`)), 'the history names the move by its id');
      const unknown = await curl('/v1/management-address/move', { token: adminToken, method: 'POST', body: { to: 'node-9' } });
      assert.equal(unknown.status, 409);
      assert.match(JSON.parse(unknown.body).message as string, /unknown node "node-9"/);

      const back = lab.nodes.find((node) => node !== target)!;
      const cli = await run(...inNamespace(lab.clientNs, process.execPath, join(__dirname, '..', '..', 'src', 'main.js'), 'move', '--to', back.name,
        '--server', `https://${lab.vip}`, '--token', adminToken, '--ca-fingerprint', fingerprint));
      assert.equal(cli.code, 0, cli.stderr);
      // It follows the move through the VIP until the new holder answers, and says what it saw.
      assert.match(cli.stdout, new RegExp(`^moved the VIP from ${target.name} to ${back.name} \\(term \\d+, move [0-9a-f]{8}\\); ${lab.vip.replace(/\./g, '\\.')} went unanswered for at most \\d+ ms`));
      await untilApiShows(back.name);
      const events = JSON.parse((await curl('/v1/events', { token: readToken })).body) as { events: Array<{ to: string; reason: string }> };
      assert.match(events.events.at(-1)?.reason ?? '', /planned move/);
      assertNeverTwoHolders(observer);
    }));

  /** A long-running vipd command in a namespace, its stdout collected line by line. */
  function follow(namespace: string, args: string[]): { lines: string[]; exit: Promise<number | null>; stop: () => void } {
    const child = spawn(...inNamespace(namespace, process.execPath, join(__dirname, '..', '..', 'src', 'main.js'), ...args), { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let stderr = '';
    createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => {
      if (code !== 0) process.stderr.write(`vipd ${args[0]} exited ${code}: ${stderr}\n`);
      resolve(code);
    }));
    return { lines, exit, stop: () => void child.kill('SIGINT') };
  }

  test('`vipd events -w -o json` through the VIP and `vipd status -w` on a node follow a move and a stopped agent, and exit 0 on Ctrl-C', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      const target = lab.nodes.find((node) => node !== holder)!;
      const bystander = lab.nodes.find((node) => node !== holder && node !== target)!;
      const events = follow(lab.clientNs, ['events', '-w', '-o', 'json', '--limit', '0', '--server', `https://${lab.vip}`, '--token', readToken, '--ca-fingerprint', fingerprint]);
      const status = follow(target.namespace, ['status', '-w', '--config', target.configPath]);
      const changes = (): Array<Record<string, unknown>> => events.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      try {
        await waitFor('status -w to show the holder', () => status.lines.some((line) => line.includes(`held by ${holder.name} `)), 20_000);
        const moved = await lab.vipd(bystander, ['move', '--to', target.name, '--config', bystander.configPath]);
        assert.equal(moved.code, 0, moved.stderr);
        await waitFor('events -w to print the move', () => changes().some((change) => change.type === 'move' && change.from === holder.name && change.to === target.name), 20_000);
        await waitFor('status -w to show the new holder', () => status.lines.some((line) => line.includes(`held by ${target.name} `)), 20_000);
        // The stream went through the VIP to the old holder; it must come back through the new one.
        await lab.stopAgent(bystander, 'SIGTERM');
        await waitFor('events -w to print the stopped agent', () => changes().some((change) => change.type === 'node' && change.node === bystander.name && change.healthy === false), 30_000);
        await waitFor('status -w to show the node down', () => status.lines.some((line) => line.includes(`(down: ${bystander.name})`)), 20_000);
        await startAgentAndWait(lab, bystander);
        await waitFor('events -w to print the agent back', () => changes().some((change) => change.type === 'node' && change.node === bystander.name && change.healthy === true), 20_000);
        assert.ok(status.lines.every((line) => /^\d{4}-\d\d-\d\dT[\d:.]+Z  /.test(line)), 'every line starts with its time');
        assert.equal(changes().filter((change) => change.type === 'move' && change.to === target.name).length, 1, 'the move once, reconnection or not');
      } finally {
        events.stop();
        status.stop();
      }
      assert.deepEqual([await events.exit, await status.exit], [0, 0], 'Ctrl-C is a clean exit');
      assertNeverTwoHolders(observer);
    }));

  test('the dashboard, loaded through the VIP in Chromium, follows a failover live', { skip: existsSync('/usr/bin/chromium') ? false : '/usr/bin/chromium is not installed' }, () =>
    explained(lab, async () => {
      mkdirSync(ARTIFACTS, { recursive: true });
      const driver = spawn(...inNamespace(lab.clientNs, process.execPath, join(__dirname, '..', '..', 'lab', 'browser-driver.js'), `https://${lab.vip}/`, adminToken, join(ARTIFACTS, 'dashboard-lab.png')), {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const steps: Array<{ step: string; holder?: string; newest?: string; notReloaded?: boolean; message?: string }> = [];
      createInterface({ input: driver.stdout! }).on('line', (line) => steps.push(JSON.parse(line)));
      try {
        const shown = await waitFor('the dashboard to show the holder', () => steps.find((step) => step.step === 'holder' || step.step === 'error'), 60_000);
        assert.equal(shown.step, 'holder', shown.message);
        const holder = await singleHolder(lab, observer);
        assert.equal(shown.holder, holder.name);
        await lab.stopAgent(holder, 'SIGKILL');
        const moved = await waitFor('the dashboard to show the new holder', () => steps.find((step) => step.step === 'moved' || step.step === 'error'), 120_000);
        assert.equal(moved.step, 'moved', moved.message);
        assert.notEqual(moved.holder, holder.name);
        assert.equal(moved.notReloaded, true, 'the page followed without a reload');
        assert.match(moved.newest ?? '', new RegExp(`${holder.name}\\s*→\\s*${moved.holder}`));
        await waitFor('the screenshot', () => steps.some((step) => step.step === 'done'), 30_000);
        await startAgentAndWait(lab, holder as LabNode);
      } finally {
        driver.kill('SIGKILL');
      }
      assertNeverTwoHolders(observer);
    }));
});
