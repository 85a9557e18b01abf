import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeEtcdPki, type EtcdPki } from '../../lab/etcd-pki';
import { inNamespace, Lab, type LabNode } from '../../lab/lab';
import { VipObserver } from '../../lab/observer';
import { alive, run, waitFor, type CommandResult } from '../../lab/shell';
import { assertNeverTwoHolders, stopObserver } from './helpers';

const CLI = join(__dirname, '..', '..', 'src', 'main.js');
const OTHER_VIP = '192.0.2.20';

/**
 * An operator's etcd with TLS and --client-cert-auth, its certificates from its own CA (not
 * the vipd cluster's). vipd touches its access control only with --etcd-manage-access.
 */
describe('an external etcd gets the embedded store\'s access rules when vipd may manage them', { timeout: 600_000 }, () => {
  let lab: Lab;
  let pki: EtcdPki;
  let observer: VipObserver;
  let token = '';
  let clusterKey = '';

  const dataDir = (node: LabNode, cluster = 'lab'): string => join(lab.dir, 'nodes', `${node.name}-${cluster}`);
  const configPath = (node: LabNode, cluster = 'lab'): string => join(dataDir(node, cluster), 'config.yaml');
  const client = (user: string): { cert: string; key: string } => pki.clients.get(user)!;

  async function vipd(node: LabNode, args: string[]): Promise<CommandResult> {
    return await run(...inNamespace(node.namespace, process.execPath, CLI, ...args), 180_000);
  }

  function initArgs(node: LabNode, cluster: string, vip: string, user: string, extra: string[] = []): string[] {
    return ['init', '--interface', 'mgmt-br', '--vip', vip, '--cluster', cluster, '--node-name', node.name, '--etcd', lab.etcdEndpoint,
      '--etcd-ca', pki.tls.ca, '--etcd-cert', client(user).cert, '--etcd-key', client(user).key,
      '--data-dir', dataDir(node, cluster), '--config', configPath(node, cluster), '--yes', ...extra];
  }

  /** etcdctl with one user's client certificate; never throws. */
  async function etcdctlAs(user: string, ...args: string[]): Promise<CommandResult> {
    return await run('ip', ['netns', 'exec', lab.etcdNs, 'etcdctl', `--endpoints=${lab.etcdEndpoint}`, `--cacert=${pki.tls.ca}`,
      `--cert=${client(user).cert}`, `--key=${client(user).key}`, '--dial-timeout=2s', ...args]);
  }

  /** init and join leave the agent running in the background; its pid is in the data dir. */
  async function stopBackgroundAgent(node: LabNode, cluster = 'lab'): Promise<void> {
    const pid = Number(readFileSync(join(dataDir(node, cluster), 'vipd.pid'), 'utf8').trim());
    process.kill(pid, 'SIGTERM');
    await waitFor(`${node.name}'s agent of cluster ${cluster} to exit`, () => !alive(pid), 30_000, 50);
  }

  const lines = (text: string): string[] => text.split('\n').filter(Boolean).sort();

  before(async () => {
    lab = await Lab.create({ nodes: 3 });
    pki = await makeEtcdPki(join(lab.dir, 'etcd-pki'), 'root', ['vipd-node-node-1', 'vipd-node-node-2', 'vipd-node-node-3', 'stranger']);
    observer = await VipObserver.start(lab.vip, lab.nodes);
  });

  after(async () => {
    try {
      stopObserver(observer);
    } finally {
      await lab?.destroy();
    }
  });

  test('--etcd-manage-access refuses an etcd that takes no user from a certificate, and leaves it as it was', async () => {
    const node1 = lab.node('node-1');
    const asItWas = async (): Promise<void> => {
      // Access control off (etcdctl's certificate names nobody there), no users or roles, nothing stored, no files.
      assert.deepEqual(lines(await lab.etcdctl('user', 'list')), []);
      assert.deepEqual(lines(await lab.etcdctl('role', 'list')), []);
      assert.equal((await lab.etcdctl('get', '--prefix', '--keys-only', '/vipd/')).trim(), '');
      assert.ok(!existsSync(configPath(node1)));
    };
    try {
      // TLS that asks for no client certificate: refused before anything is touched.
      await lab.startEtcd({ tls: { ...pki.tls, clientCertificates: 'none' } });
      const open = await vipd(node1, initArgs(node1, 'lab', lab.vip, 'vipd-node-node-1', ['--etcd-manage-access']));
      assert.equal(open.code, 2, `${open.stdout}\n${open.stderr}`);
      assert.match(open.stderr, /--etcd-manage-access: etcd at https:\/\/192\.0\.2\.2:2379 accepts a client without a certificate/);
      await asItWas();
      await lab.stopEtcd('SIGTERM');
      // --trusted-ca-file without --client-cert-auth: only turning access control on shows it, and vipd turns it off again.
      await lab.startEtcd({ tls: { ...pki.tls, clientCertificates: 'checked' } });
      const checked = await vipd(node1, initArgs(node1, 'lab', lab.vip, 'vipd-node-node-1', ['--etcd-manage-access']));
      assert.equal(checked.code, 2, `${checked.stdout}\n${checked.stderr}`);
      assert.match(checked.stderr, /--etcd-manage-access: etcd at https:\/\/192\.0\.2\.2:2379 takes no user from a client certificate .*: run it with --client-cert-auth\. vipd turned its access control off again/);
      await asItWas();
    } finally {
      await lab.stopEtcd('SIGTERM');
      await lab.startEtcd({ tls: pki.tls });
    }
  });

  test('without --etcd-manage-access vipd leaves etcd\'s users, roles and authentication alone', async () => {
    const node3 = lab.node('node-3');
    const init = await vipd(node3, initArgs(node3, 'other', OTHER_VIP, 'vipd-node-node-3'));
    assert.equal(init.code, 0, `${init.stdout}\n${init.stderr}`);
    assert.doesNotMatch(init.stdout, /manages its users/);
    assert.deepEqual(lines(await lab.etcdctl('user', 'list')), []);
    assert.deepEqual(lines(await lab.etcdctl('role', 'list')), []);
    // Authentication is off: any certificate from the etcd's CA may write the cluster's keys.
    const put = await etcdctlAs('stranger', 'put', '/vipd/other/doctor/scratch', 'x');
    assert.equal(put.code, 0, put.stderr);
    // Its agent stops before access control goes on below, which would refuse it.
    await stopBackgroundAgent(node3, 'other');
  });

  test('--etcd-manage-access refuses a certificate that would lock the node out, naming the flag, and writes nothing', async () => {
    const node1 = lab.node('node-1');
    const noCert = await vipd(node1, ['init', '--interface', 'mgmt-br', '--vip', lab.vip, '--cluster', 'lab', '--etcd', lab.etcdEndpoint,
      '--etcd-manage-access', '--data-dir', dataDir(node1), '--config', configPath(node1), '--yes']);
    assert.equal(noCert.code, 2, noCert.stderr);
    assert.match(noCert.stderr, /--etcd-manage-access: needs --etcd-ca, --etcd-cert and --etcd-key/);
    const stranger = await vipd(node1, initArgs(node1, 'lab', lab.vip, 'stranger', ['--etcd-manage-access']));
    assert.equal(stranger.code, 2, stranger.stderr);
    assert.match(stranger.stderr, /--etcd-cert: its CN is "stranger", which is neither this node's etcd user "vipd-node-node-1"/);
    assert.deepEqual(lines(await lab.etcdctl('user', 'list')), []);
    assert.equal((await etcdctlAs('stranger', 'get', '--prefix', '--keys-only', '/vipd/lab/')).stdout.trim(), '');
  });

  test('init with --etcd-manage-access turns authentication on, with the embedded store\'s users and roles', async () => {
    const node1 = lab.node('node-1');
    const init = await vipd(node1, initArgs(node1, 'lab', lab.vip, 'vipd-node-node-1', ['--etcd-manage-access']));
    assert.equal(init.code, 0, `${init.stdout}\n${init.stderr}`);
    assert.match(init.stdout, /Cluster store +etcd at https:\/\/192\.0\.2\.2:2379 \(vipd manages its users and roles\)/);
    assert.match(init.stdout, /--etcd-cert CERT --etcd-key KEY\n\n\(CERT: a client certificate from the etcd's CA with CN vipd-node-NAME/);
    clusterKey = /VIPD_CLUSTER_KEY=(\S+)/.exec(init.stdout)?.[1] ?? '';
    token = /--token (\S+)/.exec(init.stdout)?.[1] ?? '';
    assert.ok(token, init.stdout);
    await waitFor('node-1 to hold the VIP', () => observer.currentHolders().join() === 'node-1', 30_000, 20);
    assert.deepEqual(lines(await lab.etcdctl('user', 'list')), ['root', 'vipd-node-node-1']);
    assert.deepEqual(lines(await lab.etcdctl('role', 'list')), ['vipd-lab-nodes']);
    assert.match(await lab.etcdctl('user', 'get', 'vipd-node-node-1'), /Roles: root/);
    // A certificate from the etcd's CA whose CN is no user of it gets nothing.
    const read = await etcdctlAs('stranger', 'get', '/vipd/lab/settings');
    assert.notEqual(read.code, 0, read.stdout);
    assert.match(read.stderr, /permission denied|user name not found/);
  });

  test('a join makes the node\'s user; its client certificate must carry that user\'s CN', async () => {
    const [node2, node3] = [lab.node('node-2'), lab.node('node-3')];
    const joinArgs = (node: LabNode, user: string): string[] => ['join', `https://${lab.vip}`, '--token', token, '--node-name', node.name,
      '--etcd-cert', client(user).cert, '--etcd-key', client(user).key, '--data-dir', dataDir(node), '--config', configPath(node)];
    const wrong = await vipd(node3, joinArgs(node3, 'stranger'));
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(wrong.stderr, /--etcd-cert: its CN is "stranger", but .* use a certificate with CN vipd-node-node-3/);

    const joined = await vipd(node2, joinArgs(node2, 'vipd-node-node-2'));
    assert.equal(joined.code, 0, `${joined.stdout}\n${joined.stderr}`);
    assert.match(joined.stdout, /Signs +no/);
    assert.deepEqual(lines(await lab.etcdctl('user', 'list')), ['root', 'vipd-node-node-1', 'vipd-node-node-2']);
    assert.deepEqual(lines(await lab.etcdctl('role', 'list')), ['vipd-lab-node-node-2', 'vipd-lab-nodes']);
    const roles = await lab.etcdctl('user', 'get', 'vipd-node-node-2');
    assert.match(roles, /vipd-lab-nodes/);
    assert.match(roles, /vipd-lab-node-node-2/);
    assert.doesNotMatch(roles, /\broot\b/);

    // A node joined with the cluster key signs: its user has etcd's root role, as in the embedded store.
    const signer = await vipd(node3, [...joinArgs(node3, 'vipd-node-node-3'), '--cluster-key', clusterKey]);
    assert.equal(signer.code, 0, `${signer.stdout}\n${signer.stderr}`);
    assert.match(signer.stdout, /Signs +yes/);
    assert.match(await lab.etcdctl('user', 'get', 'vipd-node-node-3'), /Roles: root/);
  });

  test('a node joined with the token alone cannot write another node\'s record, the settings, the CA or the tokens', async () => {
    const node2 = lab.node('node-2');
    const ca = await etcdctlAs('vipd-node-node-2', 'get', '--print-value-only', '/vipd/lab/security/ca');
    assert.equal(ca.code, 0, ca.stderr);
    assert.match(ca.stdout, /"sealedKey"/);
    assert.doesNotMatch(ca.stdout, /PRIVATE KEY/);
    for (const key of ['/vipd/lab/nodes/node-1', '/vipd/lab/alive/node-1', '/vipd/lab/settings', '/vipd/lab/security/ca', '/vipd/lab/security/tokens/vipd_0000000000000000']) {
      const put = await etcdctlAs('vipd-node-node-2', 'put', key, '{}');
      assert.notEqual(put.code, 0, `node-2 wrote ${key}`);
      assert.match(put.stderr, /permission denied/);
    }
    const minted = await vipd(node2, ['token', 'create', '--role', 'admin', '--config', configPath(node2)]);
    assert.equal(minted.code, 1, minted.stdout);
    assert.match(minted.stderr, /only a signing node/);
    // Its own records it writes: its agent keeps its liveness key.
    assert.match(await lab.etcdctl('get', '--keys-only', '/vipd/lab/alive/node-2'), /alive\/node-2/);
  });

  test('vipd node remove deletes the node\'s etcd user: its certificate is refused at once', async () => {
    const [node1, node2] = [lab.node('node-1'), lab.node('node-2')];
    await stopBackgroundAgent(node2);
    await waitFor('node-2\'s liveness key to expire', async () => (await lab.etcdctl('get', '--keys-only', '/vipd/lab/alive/node-2')).trim() === '', 30_000, 200);
    const removed = await vipd(node1, ['node', 'remove', 'node-2', '--config', configPath(node1)]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /removed node node-2: its registration and its etcd user/);
    const read = await etcdctlAs('vipd-node-node-2', 'get', '/vipd/lab/settings');
    assert.notEqual(read.code, 0, read.stdout);
    assert.match(read.stderr, /permission denied|user name not found/);
    assert.deepEqual(lines(await lab.etcdctl('user', 'list')), ['root', 'vipd-node-node-1', 'vipd-node-node-3']);
    assert.deepEqual(lines(await lab.etcdctl('role', 'list')), ['vipd-lab-nodes']);
    assert.deepEqual(observer.currentHolders(), ['node-1']);
    assertNeverTwoHolders(observer);
  });
});
