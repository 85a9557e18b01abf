import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
// Installs WebCrypto as x509's provider.
import '../../src/security/ca';
import { runWithResolver, startLabDns, type LabDns } from '../../lab/dns';
import { inNamespace, Lab, type LabNode } from '../../lab/lab';
import { VipObserver } from '../../lab/observer';
import { mustRun, run, waitFor, type CommandResult } from '../../lab/shell';
import { assertNeverTwoHolders, takeoverFrom, stopObserver } from './helpers';

const CLI = join(__dirname, '..', '..', 'src', 'main.js');
const FQDN = 'vip.lab.example';
const STRANGER_IP = '192.0.2.5';

interface StatusJson {
  spec: { address: string | null; mode: string };
  status: { holder: string | null; term: number | null; caFingerprint?: string };
}

interface Member {
  name: string;
  peerURLs: string[];
  clientURLs?: string[];
  isLearner?: boolean;
}

/** A CA of the user's own and a certificate that names only the FQDN, as people upload them. */
async function throwawayCertificate(names: string[]): Promise<{ ca: string; certificate: string; privateKey: string }> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const caKeys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const now = Date.now();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=Example Corp throwaway CA',
    keys: caKeys,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 30 * 86_400_000),
    signingAlgorithm: algorithm,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  const leafKeys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const leaf = await x509.X509CertificateGenerator.create({
    subject: `CN=${names[0]}`,
    issuer: ca.subject,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 30 * 86_400_000),
    signingAlgorithm: algorithm,
    extensions: [
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns' as const, value }))),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey);
  return { ca: ca.toString('pem'), certificate: leaf.toString('pem'), privateKey: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}

describe('vipd init on the first node, vipd join on the others (embedded etcd)', { timeout: 900_000 }, () => {
  let lab: Lab;
  let observer: VipObserver;
  let dns: LabDns;
  let joinToken = '';
  let clusterKey = '';
  let adminToken = '';
  let clusterCaPath = '';

  const dataDir = (node: LabNode): string => join(lab.dir, 'nodes', node.name);
  const configPath = (node: LabNode): string => join(dataDir(node), 'config.yaml');

  async function vipd(node: LabNode, args: string[], timeoutMs = 180_000): Promise<CommandResult> {
    return await run(...inNamespace(node.namespace, process.execPath, CLI, ...args), timeoutMs);
  }

  function joinArgs(node: LabNode, server: string, token: string, extra: string[] = []): string[] {
    return ['join', server, '--token', token, '--node-name', node.name, '--data-dir', dataDir(node), '--config', configPath(node), ...extra];
  }

  async function statusOf(node: LabNode): Promise<StatusJson> {
    const result = await vipd(node, ['status', '--config', configPath(node), '-o', 'json'], 30_000);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as StatusJson;
  }

  /** etcd's member list, asked through a node's own client certificate. */
  async function members(node: LabNode): Promise<Member[]> {
    const pki = join(dataDir(node), 'pki');
    const endpoint = `https://${node.ip}:2379`;
    const out = await mustRun('ip', ['netns', 'exec', node.namespace, 'etcdctl', `--endpoints=${endpoint}`, `--cacert=${join(pki, 'ca.pem')}`,
      `--cert=${join(pki, 'etcd-client.pem')}`, `--key=${join(pki, 'etcd-client-key.pem')}`, '--dial-timeout=2s', 'member', 'list', '-w', 'json']);
    return (JSON.parse(out) as { members: Member[] }).members;
  }

  async function registeredNodes(node: LabNode): Promise<string[]> {
    const pki = join(dataDir(node), 'pki');
    const out = await mustRun('ip', ['netns', 'exec', node.namespace, 'etcdctl', `--endpoints=https://${node.ip}:2379`, `--cacert=${join(pki, 'ca.pem')}`,
      `--cert=${join(pki, 'etcd-client.pem')}`, `--key=${join(pki, 'etcd-client-key.pem')}`, 'get', '--prefix', '--keys-only', '/vipd/lab/nodes/']);
    return out.split('\n').filter(Boolean).map((key) => key.replace('/vipd/lab/nodes/', '')).sort();
  }

  /** Every node that runs an agent reports the same holder and term. */
  async function sameStatusOn(nodes: LabNode[]): Promise<StatusJson> {
    return await waitFor('every node to report the same status', async () => {
      // One CLI at a time: each is a Node start-up, and the lab's etcds share two cores.
      const views: StatusJson[] = [];
      for (const node of nodes) views.push(await statusOf(node));
      const first = views[0]!;
      const same = views.every((view) => view.status.holder === first.status.holder && view.status.term === first.status.term && view.spec.address === first.spec.address);
      return same && first.status.holder ? first : undefined;
    }, 30_000, 1000);
  }

  function assertNothingWritten(node: LabNode): void {
    assert.equal(existsSync(configPath(node)), false, 'no config file was written');
    const leftovers = existsSync(dataDir(node)) ? readdirSync(dataDir(node)) : [];
    assert.deepEqual(leftovers, [], 'nothing was written to the data dir');
  }

  /** A refused join: exit 2, the message names the requirement, and nothing changed anywhere. */
  async function assertRefused(node: LabNode, args: string[], message: RegExp, reference: LabNode): Promise<void> {
    const membersBefore = (await members(reference)).length;
    const nodesBefore = await registeredNodes(reference);
    const result = await vipd(node, args, 60_000);
    assert.equal(result.code, 2, `exit code: stdout ${result.stdout} stderr ${result.stderr}`);
    assert.match(result.stderr, message);
    assertNothingWritten(node);
    assert.equal((await members(reference)).length, membersBefore, 'no etcd member was added');
    assert.deepEqual(await registeredNodes(reference), nodesBefore, 'no node was registered');
  }

  async function curlFromClient(args: string[]): Promise<CommandResult> {
    return await run('ip', ['netns', 'exec', lab.clientNs, 'curl', '-sS', '--max-time', '5', ...args]);
  }

  before(async () => {
    lab = await Lab.create({ nodes: 6 });
    observer = await VipObserver.start(lab.vip, lab.nodes);
    dns = await startLabDns(lab, { [FQDN]: lab.vip });
  });

  after(async () => {
    try {
      stopObserver(observer);
    } finally {
      await lab?.destroy();
    }
  });

  test('init refuses a VIP that already answers on the segment, and writes nothing', async () => {
    const node = lab.node('node-1');
    await mustRun('ip', ['-n', lab.clientNs, 'addr', 'add', `${lab.vip}/24`, 'dev', 'eth0']);
    try {
      const result = await vipd(node, ['init', '--interface', 'mgmt-br', '--vip', lab.vip, '--cluster', 'lab', '--node-name', 'node-1',
        '--data-dir', dataDir(node), '--config', configPath(node), '--yes']);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /--vip: 192\.0\.2\.10 is already in use on the segment: .* answered an ARP probe/);
      assertNothingWritten(node);
    } finally {
      await mustRun('ip', ['-n', lab.clientNs, 'addr', 'del', `${lab.vip}/24`, 'dev', 'eth0']);
    }
  });

  test('init on node-1 starts etcd and the agent, and prints the management address, the node IP and the join command', async () => {
    const node = lab.node('node-1');
    const result = await vipd(node, ['init', '--interface', 'mgmt-br', '--vip', lab.vip, '--fqdn', FQDN, '--cluster', 'lab',
      '--node-name', 'node-1', '--data-dir', dataDir(node), '--config', configPath(node), '--yes']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /Management address +https:\/\/192\.0\.2\.10\n/);
    assert.match(result.stdout, /This node +node-1, 192\.0\.2\.11 on mgmt-br/);
    assert.match(result.stdout, /logging to .*vipd\.log/);
    const command = /vipd join https:\/\/192\.0\.2\.10 --token (vipd-join:[0-9a-f]{64}:vipd_[0-9a-f]{16}\.[A-Za-z0-9_-]{43})\n/.exec(result.stdout);
    assert.ok(command, result.stdout);
    joinToken = command[1]!;
    clusterKey = /VIPD_CLUSTER_KEY=(vipd-key:[A-Za-z0-9_-]{43}) vipd join/.exec(result.stdout)?.[1] ?? '';
    assert.ok(clusterKey, 'init prints the cluster key for signing nodes');
    await waitFor('node-1 to hold the VIP', () => observer.currentHolders().join() === 'node-1', 20_000, 20);
    await lab.waitClientReaches('node-1');
    assert.equal((await members(node)).length, 1);
    const ca = await vipd(node, ['ca', '--config', configPath(node)], 30_000);
    clusterCaPath = join(lab.dir, 'cluster-ca.pem');
    writeFileSync(clusterCaPath, ca.stdout);
    assert.equal(joinToken.split(':')[1], (/SHA-256 fingerprint: (\S+)/.exec(ca.stderr)?.[1] ?? '').replace(/:/g, '').toLowerCase(), 'the token carries the CA hash');
  });

  test('node-2 joins by the VIP with the cluster key, and becomes the second etcd member and a signing node', async () => {
    const node = lab.node('node-2');
    const wrongKey = await vipd(node, joinArgs(node, `https://${lab.vip}`, joinToken, ['--cluster-key', `vipd-key:${'A'.repeat(43)}`]));
    assert.equal(wrongKey.code, 2, `${wrongKey.stdout}\n${wrongKey.stderr}`);
    assert.match(wrongKey.stderr, /--cluster-key: this is not the cluster key of cluster "lab"/);
    assertNothingWritten(node);
    const result = await vipd(node, joinArgs(node, `https://${lab.vip}`, joinToken, ['--cluster-key', clusterKey]));
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /node-2 joined cluster "lab"/);
    assert.match(result.stdout, /etcd member/);
    assert.match(result.stdout, /Signs +yes/);
    assert.equal(statSync(join(dataDir(node), 'pki', 'cluster.key')).mode & 0o777, 0o600);
    await waitFor('two voting etcd members', async () => {
      const list = await members(node);
      return list.length === 2 && list.every((member) => !member.isLearner);
    }, 30_000, 200);
    await sameStatusOn([lab.node('node-1'), node]);
  });

  test('with an uploaded certificate that names only the FQDN, node-3 joins by the FQDN (lab DNS), and all three see one cluster', async () => {
    const node1 = lab.node('node-1');
    adminToken = (await vipd(node1, ['token', 'create', '--role', 'admin', '--config', configPath(node1)], 30_000)).stdout.trim();
    const uploaded = await throwawayCertificate([FQDN]);
    const uploadedCaPath = join(lab.dir, 'uploaded-ca.pem');
    writeFileSync(uploadedCaPath, uploaded.ca);
    const body = JSON.stringify({ certificate: uploaded.certificate, privateKey: uploaded.privateKey, caChain: uploaded.ca });
    const put = await curlFromClient(['--cacert', clusterCaPath, '-X', 'PUT', '-H', `Authorization: Bearer ${adminToken}`, '-H', 'Content-Type: application/json',
      '--data', body, '-w', '\n%{http_code}', `https://${lab.vip}/v1/settings/ssl-certificates`]);
    assert.match(put.stdout, /\n200$/, put.stdout + put.stderr);
    assert.match(put.stdout, /does not list the VIP 192\.0\.2\.10/);
    // Browsers now get the uploaded certificate: trusted through the user's CA, by name only.
    await waitFor('the uploaded certificate to be served', async () =>
      (await curlFromClient(['--cacert', uploadedCaPath, '--resolve', `${FQDN}:443:${lab.vip}`, `https://${FQDN}/ping`])).code === 0, 20_000, 200);

    const node = lab.node('node-3');
    const result = await runWithResolver(node.namespace, dns.resolvConf, process.execPath, [CLI, ...joinArgs(node, `https://${FQDN}`, joinToken)], 180_000);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /node-3 joined cluster "lab"/);
    assert.match(result.stdout, /etcd member/);
    await waitFor('three voting etcd members', async () => {
      const list = await members(node);
      return list.length === 3 && list.every((member) => !member.isLearner);
    }, 30_000, 200);
    const status = await sameStatusOn([node1, lab.node('node-2'), node]);
    assert.equal(status.status.holder, 'node-1');
    assert.deepEqual((await members(lab.node('node-2'))).map((member) => member.name).sort(), ['node-1', 'node-2', 'node-3']);
  });

  /** etcdctl with a node's own client certificate, against another node's member; never throws. */
  async function etcdctlAs(certOf: LabNode, via: LabNode, ...args: string[]): Promise<CommandResult> {
    const pki = join(dataDir(certOf), 'pki');
    return await run('ip', ['netns', 'exec', via.namespace, 'etcdctl', `--endpoints=https://${via.ip}:2379`, `--cacert=${join(pki, 'ca.pem')}`,
      `--cert=${join(pki, 'etcd-client.pem')}`, `--key=${join(pki, 'etcd-client-key.pem')}`, '--dial-timeout=2s', ...args]);
  }

  test('a node joined without the cluster key cannot open the CA key, mint tokens, or write the settings or another node\'s record', async () => {
    const node3 = lab.node('node-3');
    const ca = await etcdctlAs(node3, node3, 'get', '--print-value-only', '/vipd/lab/security/ca');
    assert.equal(ca.code, 0, ca.stderr);
    assert.match(ca.stdout, /"sealedKey"/);
    assert.doesNotMatch(ca.stdout, /PRIVATE KEY/, 'the CA key is sealed in etcd');
    for (const [key, value] of [['/vipd/lab/security/tokens/vipd_0000000000000000', '{}'], ['/vipd/lab/nodes/node-1', '{}'], ['/vipd/lab/settings', '{}'], ['/vipd/lab/security/ca', '{}']] as const) {
      const put = await etcdctlAs(node3, node3, 'put', key, value);
      assert.notEqual(put.code, 0, `node-3 wrote ${key}`);
      assert.match(put.stderr, /permission denied/);
    }
    const add = await etcdctlAs(node3, node3, 'member', 'add', 'intruder', '--peer-urls=https://192.0.2.99:2380', '--learner');
    assert.match(add.stderr, /permission denied/);
    const token = await vipd(node3, ['token', 'create', '--role', 'admin', '--config', configPath(node3)], 30_000);
    assert.equal(token.code, 1, token.stdout);
    assert.match(token.stderr, /only a signing node \(one with the cluster key/);
    assert.ok(!existsSync(join(dataDir(node3), 'pki', 'cluster.key')));
    // Its own records it writes: the agent is alive and publishes its health.
    const status = await statusOf(node3);
    assert.equal(status.status.holder, 'node-1');
  });

  test('bad input is refused with the requirement that failed, and nothing is written, registered or added', async () => {
    const node = lab.node('node-5');
    const reference = lab.node('node-2');
    const [, hash, bearer] = joinToken.split(':') as [string, string, string];
    const vipUrl = `https://${lab.vip}`;

    // A wrong secret, and a wrong CA hash.
    await assertRefused(node, joinArgs(node, vipUrl, `vipd-join:${hash}:${bearer.slice(0, -4)}AAAA`), /--token: the join token is not valid for this cluster/, reference);
    await assertRefused(node, joinArgs(node, vipUrl, `vipd-join:${'0'.repeat(64)}:${bearer}`), /--token: https:\/\/192\.0\.2\.10 does not present the cluster CA this token names/, reference);

    // An expired token.
    const node1 = lab.node('node-1');
    const expiring = (await vipd(node1, ['token', 'create', '--role', 'join', '--ttl', '1s', '--config', configPath(node1)], 30_000)).stdout.trim();
    assert.match(expiring, /^vipd-join:/);
    await waitFor('the token to expire', async () => {
      const list = await vipd(node1, ['token', 'list', '-o', 'json', '--config', configPath(node1)], 30_000);
      const id = expiring.split('vipd_')[1]!.split('.')[0];
      return (JSON.parse(list.stdout) as { tokens: Array<{ id: string; expired: boolean }> }).tokens.some((token) => token.id === id && token.expired);
    }, 10_000, 200);
    await assertRefused(node, joinArgs(node, vipUrl, expiring), /--token: the join token has expired/, reference);

    // A revoked token.
    const revoked = (await vipd(node1, ['token', 'create', '--role', 'join', '--config', configPath(node1)], 30_000)).stdout.trim();
    const revokedId = revoked.split('vipd_')[1]!.split('.')[0]!;
    assert.equal((await vipd(node1, ['token', 'delete', revokedId, '--config', configPath(node1)], 30_000)).code, 0);
    await assertRefused(node, joinArgs(node, vipUrl, revoked), /--token: the join token is not valid for this cluster/, reference);

    // A URL that is not a vipd server: an HTTPS server with a certificate of its own.
    const stranger = await lab.addStation('st', [`${STRANGER_IP}/24`]);
    const own = await throwawayCertificate(['stranger.lab.example']);
    writeFileSync(join(lab.dir, 'stranger.pem'), own.certificate);
    writeFileSync(join(lab.dir, 'stranger-key.pem'), own.privateKey);
    const script = `require('https').createServer({ cert: require('fs').readFileSync(${JSON.stringify(join(lab.dir, 'stranger.pem'))}), key: require('fs').readFileSync(${JSON.stringify(join(lab.dir, 'stranger-key.pem'))}) }, (q, s) => s.end('hello')).listen(443)`;
    spawn(...inNamespace(stranger, process.execPath, '-e', script), { stdio: 'ignore' }).unref();
    await waitFor('the stranger to listen', async () => (await run('ip', ['netns', 'exec', stranger, 'ss', '-ltn'])).stdout.includes(':443 '), 10_000);
    await assertRefused(node, joinArgs(node, `https://${STRANGER_IP}`, joinToken), /does not present the cluster CA this token names .*not a vipd server/, reference);

    // A name that is taken.
    await assertRefused(node, joinArgs(node, vipUrl, joinToken).map((arg) => (arg === 'node-5' ? 'node-2' : arg)), /--node-name: "node-2" is already taken by the node at 192\.0\.2\.12/, reference);

    // A management interface in another subnet than the VIP.
    // A veth pair inside the node: data0 is up with carrier, like a second NIC on another network.
    await mustRun('ip', ['-n', node.namespace, 'link', 'add', 'data0', 'type', 'veth', 'peer', 'name', 'data0-peer']);
    await mustRun('ip', ['-n', node.namespace, 'addr', 'add', '198.51.100.5/24', 'dev', 'data0']);
    await mustRun('ip', ['-n', node.namespace, 'link', 'set', 'data0-peer', 'up']);
    await mustRun('ip', ['-n', node.namespace, 'link', 'set', 'data0', 'up']);
    await assertRefused(node, joinArgs(node, vipUrl, joinToken, ['--interface', 'data0']), /vip\.address: 192\.0\.2\.10 is not inside the subnet of any address on data0 \(198\.51\.100\.5\/24\)/, reference);

    // A node the other nodes cannot reach at layer 2: the switch drops its frames to and from node-2 and node-3.
    const holder = observer.currentHolders()[0];
    const others = ['node-2', 'node-3'].filter((name) => name !== holder).map((name) => `n${name.slice(5)}`);
    const ports = others.map((port) => `"${port}"`).join(', ');
    const rules = join(lab.dir, 'isolate.nft');
    writeFileSync(rules, `table bridge isolate {\n  chain forward_filter {\n    type filter hook forward priority 0;\n` +
      `    iifname "n5" oifname { ${ports} } drop\n    iifname { ${ports} } oifname "n5" drop\n  }\n}\n`);
    await mustRun('ip', ['netns', 'exec', lab.switchNs, 'nft', '-f', rules]);
    try {
      await assertRefused(node, joinArgs(node, vipUrl, joinToken), /--interface: cannot reach node-\d \(192\.0\.2\.1\d, MAC [0-9a-f:]+\).* over layer 2 from mgmt-br: no answer to an ARP probe/, reference);
    } finally {
      await mustRun('ip', ['netns', 'exec', lab.switchNs, 'nft', 'delete', 'table', 'bridge', 'isolate']);
    }
    assertNeverTwoHolders(observer);
  });

  test('node-1 dies (agent and etcd member): the VIP moves, and node-4 still joins through the VIP', async () => {
    const node1 = lab.node('node-1');
    const agentPid = Number(readFileSync(join(dataDir(node1), 'vipd.pid'), 'utf8'));
    const etcdPids = (await mustRun('ip', ['netns', 'pids', node1.namespace])).split('\n').map(Number).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] === '/usr/bin/etcd';
      } catch {
        return false;
      }
    });
    assert.equal(etcdPids.length, 1, 'node-1 runs one etcd');
    process.kill(agentPid, 'SIGKILL');
    process.kill(etcdPids[0]!, 'SIGKILL');
    await takeoverFrom(lab, observer, node1, 30_000);
    const survivors = [lab.node('node-2'), lab.node('node-3')];
    const status = await sameStatusOn(survivors);
    assert.ok(status.status.holder === 'node-2' || status.status.holder === 'node-3', `holder ${status.status.holder}`);

    const node4 = lab.node('node-4');
    const result = await vipd(node4, joinArgs(node4, `https://${lab.vip}`, joinToken));
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /node-4 joined cluster "lab"/);
    assert.match(result.stdout, /agent only, etcd at https:\/\/192\.0\.2\.1[23]:2379/);
    assert.doesNotMatch(result.stdout, /192\.0\.2\.11:2379/, 'the dead member is not given to the new node');
    assert.equal((await members(lab.node('node-2'))).length, 3, 'a fourth node joins as an agent only');
    await sameStatusOn([...survivors, node4]);
    assertNeverTwoHolders(observer);
  });

  test('vipd node remove takes node-1 out: its registration and its etcd member', async () => {
    const node2 = lab.node('node-2');
    const result = await vipd(node2, ['node', 'remove', 'node-1', '--config', configPath(node2)], 30_000);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /removed node node-1: its registration and etcd member \S+ and its etcd user .* and the tokens made on it \(/);
    // The tokens node-1 made went with it: the join token init printed among them.
    const list = JSON.parse((await vipd(node2, ['token', 'list', '-o', 'json', '--config', configPath(node2)], 30_000)).stdout) as { tokens: Array<{ createdOn?: string }> };
    assert.deepEqual(list.tokens.filter((token) => token.createdOn === 'node-1'), []);
    // node-1's certificate is refused at once, by every member.
    for (const via of [node2, lab.node('node-3')]) {
      const read = await etcdctlAs(lab.node('node-1'), via, 'get', '/vipd/lab/settings');
      assert.notEqual(read.code, 0, read.stdout);
      assert.match(read.stderr, /permission denied|user name not found|authentication failed/);
    }
    assert.deepEqual((await members(node2)).map((member) => member.name).sort(), ['node-2', 'node-3']);
    assert.deepEqual(await registeredNodes(node2), ['node-2', 'node-3', 'node-4']);
    const running = await vipd(node2, ['node', 'remove', 'node-3', '--config', configPath(node2)], 30_000);
    assert.equal(running.code, 2);
    assert.match(running.stderr, /node "node-3" is running/);
    assertNeverTwoHolders(observer);
  });

  test('two joins of one name, sent at once from two machines to two different nodes: exactly one wins, the other gets 409 naming node.name', async () => {
    const node2 = lab.node('node-2');
    const racers = [lab.node('node-5'), lab.node('node-6')];
    // node-3 does not sign: the join sent to it is passed on to node-2.
    const servers = ['https://192.0.2.12', 'https://192.0.2.13'];
    const created = await vipd(node2, ['token', 'create', '--role', 'join', '--config', configPath(node2)], 30_000);
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    const results = await Promise.all(racers.map((racer, index) => vipd(racer, joinArgs(racer, servers[index]!, token).map((arg) => (arg === racer.name ? 'racer' : arg)))));
    const won = results.filter((result) => result.code === 0);
    assert.equal(won.length, 1, results.map((result) => `${result.code}: ${result.stdout}${result.stderr}`).join('\n---\n'));
    const lost = results.find((result) => result.code !== 0)!;
    // The loser loses the claim, or, when the winner is quicker, sees it registered (on the server or in its own check).
    assert.match(lost.stderr, /node\.name: "racer" is (claimed by another join|already registered|already taken)|--node-name: "racer" is already taken/);
    assert.deepEqual((await registeredNodes(node2)).filter((name) => name === 'racer'), ['racer'], 'one registration');
    assertNeverTwoHolders(observer);
  });
});

describe('vipd init in DHCP mode leases the VIP for its own MAC and prints the reservation', { timeout: 600_000 }, () => {
  const HWADDR = '02:00:00:0a:0b:0c';
  let lab: Lab;
  let observer: VipObserver | null = null;

  before(async () => {
    lab = await Lab.create({ nodes: 2 });
    await lab.startDhcpServer();
  });

  after(async () => {
    try {
      stopObserver(observer);
    } finally {
      await lab?.destroy();
    }
  });

  test('init leases an address on a temporary macvlan, the agent serves it, and node-2 joins through it', async () => {
    const [node1, node2] = [lab.node('node-1'), lab.node('node-2')];
    const dir = (node: LabNode): string => join(lab.dir, 'nodes', node.name);
    const cli = async (node: LabNode, args: string[]): Promise<CommandResult> => await run(...inNamespace(node.namespace, process.execPath, CLI, ...args), 180_000);
    const init = await cli(node1, ['init', '--interface', 'mgmt-br', '--vip-mode', 'dhcp', '--vip-hwaddr', HWADDR, '--cluster', 'lab',
      '--node-name', 'node-1', '--data-dir', dir(node1), '--config', join(dir(node1), 'config.yaml'), '--yes']);
    assert.equal(init.code, 0, `${init.stdout}\n${init.stderr}`);
    const leased = new RegExp(`The VIP has its own MAC ${HWADDR} and was leased (192\\.0\\.2\\.\\d+)\\.`).exec(init.stdout)?.[1];
    assert.ok(leased, init.stdout);
    assert.match(init.stdout, new RegExp(`dnsmasq +dhcp-host=${HWADDR},${leased.replace(/\./g, '\\.')}`));
    assert.match(init.stdout, new RegExp(`vipd join https://${leased.replace(/\./g, '\\.')} --token vipd-join:`));
    assert.equal((await run('ip', ['-n', node1.namespace, 'link', 'show', 'vipd-init'])).code !== 0, true, 'the temporary macvlan is gone');
    observer = await VipObserver.start(leased, lab.nodes);
    await waitFor('node-1 to serve the leased VIP', () => observer!.currentHolders().join() === 'node-1', 30_000, 20);
    await lab.waitClientReaches('node-1', 20_000, leased);
    assert.equal(await lab.clientNeighbourMac(leased), HWADDR);

    const token = /--token (\S+)/.exec(init.stdout)![1]!;
    const joined = await cli(node2, ['join', `https://${leased}`, '--token', token, '--node-name', 'node-2', '--data-dir', dir(node2), '--config', join(dir(node2), 'config.yaml')]);
    assert.equal(joined.code, 0, `${joined.stdout}\n${joined.stderr}`);
    const status = await waitFor('node-2 to see the same DHCP VIP', async () => {
      const result = await cli(node2, ['status', '--config', join(dir(node2), 'config.yaml'), '-o', 'json']);
      const view = result.code === 0 ? (JSON.parse(result.stdout) as StatusJson & { metadata: { annotations: Record<string, string> } }) : null;
      return view?.status.holder === 'node-1' ? view : undefined;
    }, 30_000, 1000);
    assert.equal(status.metadata.annotations['kube-vip.io/hwaddr'], HWADDR);
    assert.equal(status.metadata.annotations['kube-vip.io/requestedIP'], leased);
    assertNeverTwoHolders(observer);
  });
});

describe('vipd init --etcd uses an external etcd, and nodes join it as agents', { timeout: 600_000 }, () => {
  let lab: Lab;
  let observer: VipObserver;

  before(async () => {
    lab = await Lab.create({ nodes: 2 });
    await lab.startEtcd();
    observer = await VipObserver.start(lab.vip, lab.nodes);
  });

  after(async () => {
    try {
      stopObserver(observer);
    } finally {
      await lab?.destroy();
    }
  });

  test('init on node-1 and join on node-2 run no etcd of their own; both agents use the external one', async () => {
    const [node1, node2] = [lab.node('node-1'), lab.node('node-2')];
    const dir = (node: LabNode): string => join(lab.dir, 'nodes', node.name);
    const cli = async (node: LabNode, args: string[]): Promise<CommandResult> => await run(...inNamespace(node.namespace, process.execPath, CLI, ...args), 180_000);
    const init = await cli(node1, ['init', '--interface', 'mgmt-br', '--vip', lab.vip, '--cluster', 'lab', '--etcd', lab.etcdEndpoint,
      '--node-name', 'node-1', '--data-dir', dir(node1), '--config', join(dir(node1), 'config.yaml'), '--yes']);
    assert.equal(init.code, 0, `${init.stdout}\n${init.stderr}`);
    const token = /--token (\S+)/.exec(init.stdout)?.[1];
    assert.ok(token, init.stdout);
    await waitFor('node-1 to hold the VIP', () => observer.currentHolders().join() === 'node-1', 30_000, 20);

    const joined = await cli(node2, ['join', `https://${lab.vip}`, '--token', token, '--node-name', 'node-2', '--data-dir', dir(node2), '--config', join(dir(node2), 'config.yaml')]);
    assert.equal(joined.code, 0, `${joined.stdout}\n${joined.stderr}`);
    assert.match(joined.stdout, new RegExp(`external etcd, etcd at ${lab.etcdEndpoint.replace(/[.:/]/g, '\\$&')}`));
    for (const node of [node1, node2]) {
      const config = readFileSync(join(dir(node), 'config.yaml'), 'utf8');
      assert.match(config, new RegExp(lab.etcdEndpoint.replace(/[.:/]/g, '\\$&')), `${node.name}'s config names the external etcd`);
      assert.doesNotMatch(config, /embedded/, `${node.name} has no embedded etcd`);
      const pids = (await mustRun('ip', ['netns', 'pids', node.namespace])).split('\n').filter(Boolean);
      const etcds = pids.filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]?.endsWith('etcd') === true;
        } catch {
          return false;
        }
      });
      assert.deepEqual(etcds, [], `${node.name} runs no etcd`);
    }
    const nodes = (await lab.etcdctl('get', '--prefix', '--keys-only', '/vipd/lab/nodes/')).split('\n').filter(Boolean).sort();
    assert.deepEqual(nodes, ['/vipd/lab/nodes/node-1', '/vipd/lab/nodes/node-2']);
    // Both agents run against the external etcd: a move to node-2 goes through it.
    const moved = await cli(node1, ['move', '--to', 'node-2', '--config', join(dir(node1), 'config.yaml')]);
    assert.equal(moved.code, 0, moved.stderr);
    await lab.waitClientReaches('node-2');
    assertNeverTwoHolders(observer);
  });
});

/**
 * `vipd init` on a terminal: util-linux `script` gives it a pseudo-terminal, and each answer
 * is typed only once its question is on the screen, as a person would.
 */
describe('vipd init on a terminal asks for what the flags leave out', { timeout: 300_000 }, () => {
  let lab: Lab;

  before(async () => {
    lab = await Lab.create({ nodes: 1 });
  });

  after(async () => {
    await lab?.destroy();
  });

  async function initOnTerminal(node: LabNode, dir: string, answers: Array<[RegExp, string]>): Promise<{ code: number | null; screen: string }> {
    const command = [process.execPath, CLI, 'init', '--node-name', node.name, '--data-dir', dir, '--config', join(dir, 'config.yaml')].join(' ');
    const child = spawn(...inNamespace(node.namespace, 'script', '-qfec', command, '/dev/null'), { stdio: ['pipe', 'pipe', 'pipe'] });
    let screen = '';
    let next = 0;
    const onOutput = (chunk: Buffer): void => {
      screen += chunk.toString('utf8');
      const pending = answers[next];
      if (pending && pending[0].test(screen.slice(screen.lastIndexOf('\n', screen.length - 2) + 1))) {
        next += 1;
        child.stdin?.write(`${pending[1]}\r`);
      }
    };
    child.stdout?.on('data', onOutput);
    child.stderr?.on('data', onOutput);
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
      child.once('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    assert.equal(next, answers.length, `not every question was asked; the screen:\n${screen}`);
    return { code, screen };
  }

  test('answering "no" at the end writes nothing', async () => {
    const node = lab.node('node-1');
    const dir = join(lab.dir, 'nodes', 'declined');
    const { code, screen } = await initOnTerminal(node, dir, [
      [/Management interface \(number or name\)/, 'mgmt-br'],
      [/VIP mode: static or dhcp \[static\]/, ''],
      [/VIP address/, lab.vip],
      [/FQDN of the management address/, ''],
      [/Cluster name \[vipd\]/, 'lab'],
      [/Create cluster "lab" with VIP 192\.0\.2\.10 on mgmt-br\? \(yes\/no\)/, 'no'],
    ]);
    assert.equal(code, 2, screen);
    assert.match(screen, /Management interfaces:\r?\n\s+1\) mgmt-br/);
    assert.match(screen, /cancelled: nothing was written/);
    assert.equal(existsSync(join(dir, 'config.yaml')), false);
  });

  test('the answers make the cluster: the VIP is up and the join command is printed', async () => {
    const node = lab.node('node-1');
    const dir = join(lab.dir, 'nodes', node.name);
    const { code, screen } = await initOnTerminal(node, dir, [
      [/Management interface \(number or name\)/, '1'],
      [/VIP mode: static or dhcp/, 'static'],
      [/VIP address/, lab.vip],
      [/FQDN of the management address/, FQDN],
      [/Cluster name/, 'lab'],
      [/Create cluster "lab"/, 'yes'],
    ]);
    assert.equal(code, 0, screen);
    assert.match(screen, /Management address +https:\/\/192\.0\.2\.10/);
    assert.match(screen, /vipd join https:\/\/192\.0\.2\.10 --token vipd-join:/);
    const config = readFileSync(join(dir, 'config.yaml'), 'utf8');
    assert.match(config, /interface: mgmt-br/);
    assert.match(config, new RegExp(`fqdn: ${FQDN.replace(/\./g, '\\.')}`));
    await lab.waitClientReaches('node-1');
  });
});
