import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EtcdStore } from '../../src/store/etcd-store';
import { ClusterKeys } from '../../src/store/keys';
import { ClusterCa } from '../../src/security/ca';
import { ServingCertificates, validateCertificateUpload } from '../../src/security/certificates';
import { EtcdKeyValue, MemoryKeyValue, type KeyValue } from '../../src/store/kv';
import { securityKeys } from '../../src/store/keys';
import { waitFor } from '../../lab/shell';
import { parseTokenTtl, TokenStore } from '../../src/security/tokens';
import { CLAIM_STALE_MS, claimNameAndIp, releaseClaims } from '../../src/cluster/join-claims';
import { grantMissingSharedPermissions, nodesRole, sharedPermissions } from '../../src/store/access';

const keys = securityKeys(new ClusterKeys('demo'));
const FINGERPRINT = /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/;

describe('tokens', () => {
  test('create prints vipd_<id>.<secret> once and stores only a hash', async () => {
    const kv = new MemoryKeyValue();
    const tokens = new TokenStore(kv, keys);
    const created = await tokens.create({ role: 'admin', description: 'ci' });
    assert.match(created.token, /^vipd_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    const secret = created.token.split('.')[1]!;
    const stored = [...kv.data.values()].join('\n');
    assert.ok(!stored.includes(secret), 'the secret is not stored');
    assert.match(stored, /"hash":"[0-9a-f]{64}"/);
    assert.deepEqual(await tokens.verify(created.token), created.record);
    assert.equal(created.record.role, 'admin');
    const expires = new Date(created.record.expires!).getTime() - new Date(created.record.created).getTime();
    assert.equal(expires, 24 * 3600_000, 'the default lifetime is 24 h');
  });

  test('verify refuses wrong secrets, unknown ids, malformed and expired tokens alike', async () => {
    let now = Date.now();
    const tokens = new TokenStore(new MemoryKeyValue(), keys, () => new Date(now));
    const { token } = await tokens.create({ role: 'read', ttlMs: 60_000 });
    const [id] = token.replace(/^vipd_/, '').split('.');
    for (const bad of [`vipd_${id}.${'x'.repeat(43)}`, `vipd_ffffffffffffffff.${'x'.repeat(43)}`, 'vipd_', '', `${token} `]) {
      assert.equal(await tokens.verify(bad), null, bad);
    }
    now += 61_000;
    assert.equal(await tokens.verify(token), null, 'expired');
    const forever = await tokens.create({ role: 'read', ttlMs: null });
    now += 10 * 365 * 86_400_000;
    assert.equal((await tokens.verify(forever.token))?.expires, null);
  });

  test('list shows no secrets; delete ends a token', async () => {
    const tokens = new TokenStore(new MemoryKeyValue(), keys);
    const a = await tokens.create({ role: 'read', description: 'dashboard' });
    const b = await tokens.create({ role: 'admin' });
    const listed = await tokens.list();
    assert.deepEqual(listed.map((record) => record.id).sort(), [a.record.id, b.record.id].sort());
    assert.ok(listed.every((record) => !('hash' in record) && record.expired === false));
    assert.equal(await tokens.delete(a.record.id), true);
    assert.equal(await tokens.delete(a.record.id), false);
    assert.equal(await tokens.delete('../../leader'), false);
    assert.equal(await tokens.verify(a.token), null);
    assert.notEqual(await tokens.verify(b.token), null);
  });

  test('bad roles, descriptions and lifetimes are refused', async () => {
    const tokens = new TokenStore(new MemoryKeyValue(), keys);
    await assert.rejects(tokens.create({ role: 'root' as 'admin' }), /--role/);
    await assert.rejects(tokens.create({ role: 'read', description: 'a\nb' }), /--description/);
    assert.equal(parseTokenTtl('30m'), 1_800_000);
    assert.equal(parseTokenTtl('7d'), 7 * 86_400_000);
    assert.equal(parseTokenTtl('never'), null);
    assert.throws(() => parseTokenTtl('0h'), /--ttl/);
    assert.throws(() => parseTokenTtl('1y'), /--ttl/);
  });
});

describe('cluster CA', () => {
  test('two nodes racing on first start agree on one CA', async () => {
    const kv = new MemoryKeyValue();
    const [a, b] = await Promise.all([
      ClusterCa.loadOrCreate(kv, keys.ca, { cluster: 'demo' }),
      ClusterCa.loadOrCreate(kv, keys.ca, { cluster: 'demo' }),
    ]);
    assert.equal(a.caFingerprint(), b.caFingerprint());
    assert.match(a.caFingerprint(), FINGERPRINT);
    const again = await ClusterCa.loadOrCreate(kv, keys.ca, { cluster: 'demo' });
    assert.equal(again.caFingerprint(), a.caFingerprint());
    const ca = new X509Certificate(a.certificatePem);
    assert.equal(ca.ca, true);
    assert.match(ca.subject, /CN=vipd cluster CA demo/);
  });

  test('serving certificates carry the VIP, node IP, FQDN and node name, and chain to the CA', async () => {
    const ca = await ClusterCa.loadOrCreate(new MemoryKeyValue(), keys.ca, { cluster: 'demo' });
    const issued = await ca.issueServingCertificate({ nodeName: 'node-1', nodeIp: '2001:db8::11', vip: '2001:db8::10', fqdn: 'mgmt.example.test' });
    const leaf = new X509Certificate(issued.chain);
    assert.ok(leaf.checkIP('2001:db8::10'));
    assert.ok(leaf.checkIP('2001:db8::11'));
    assert.ok(leaf.checkHost('mgmt.example.test'));
    assert.ok(leaf.checkHost('node-1'));
    assert.equal(leaf.ca, false);
    const root = new X509Certificate(ca.certificatePem);
    assert.ok(leaf.checkIssued(root) && leaf.verify(root.publicKey));
    assert.ok(issued.chain.includes(ca.certificatePem.trim()), 'the chain carries the CA for fingerprint pinning');
    assert.ok(leaf.checkPrivateKey(createPrivateKey(issued.privateKey)));
  });

  test('the local copy of the CA key is written with mode 0600, only when asked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vipd-ca-'));
    try {
      const path = join(dir, 'ca-key.pem');
      writeFileSync(path, 'old', { mode: 0o644 });
      await ClusterCa.loadOrCreate(new MemoryKeyValue(), keys.ca, { cluster: 'demo', keyCopyPath: path });
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.match(readFileSync(path, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('serving certificates', () => {
  async function node(kv: KeyValue, name: string, now?: () => Date): Promise<ServingCertificates> {
    const ca = await ClusterCa.loadOrCreate(kv, keys.ca, { cluster: 'demo' });
    const serving = new ServingCertificates({
      kv,
      keys,
      ca,
      node: { name, ip: '192.0.2.11' },
      vip: '192.0.2.10',
      fqdn: 'mgmt.example.test',
      ...(now ? { now } : {}),
    });
    await serving.start();
    return serving;
  }

  test('an upload on one node reaches the others, and deleting it falls back to the generated certificate', async () => {
    const kv = new MemoryKeyValue();
    const [one, two] = [await node(kv, 'node-1'), await node(kv, 'node-2')];
    try {
      assert.equal(two.status().source, 'generated');
      const corp = await ClusterCa.loadOrCreate(new MemoryKeyValue(), 'ca', { cluster: 'corp' });
      const issued = await corp.issueServingCertificate({ nodeName: 'mgmt', nodeIp: '192.0.2.10', vip: '192.0.2.10', fqdn: 'mgmt.example.test' });
      const summary = await one.upload({ certificate: issued.chain, privateKey: issued.privateKey });
      await waitFor('node-2 to serve the upload', () => two.status().source === 'uploaded', 5000, 5);
      assert.equal(two.status().fingerprint, summary.fingerprint);
      await kv.delete(keys.uploadedCertificate);
      await waitFor('node-2 to fall back to the generated certificate', () => two.status().source === 'generated', 5000, 5);
    } finally {
      one.stop();
      two.stop();
    }
  });

  test('an uploaded certificate that expires is no longer served, and the status says why', async () => {
    let now = Date.now();
    const kv = new MemoryKeyValue();
    const serving = await node(kv, 'node-1', () => new Date(now));
    try {
      const corp = await ClusterCa.loadOrCreate(new MemoryKeyValue(), 'ca', { cluster: 'corp' });
      const issued = await corp.issueServingCertificate({ nodeName: 'mgmt', nodeIp: '192.0.2.10', vip: '192.0.2.10', fqdn: 'mgmt.example.test', validityDays: 2 });
      await serving.upload({ certificate: issued.chain, privateKey: issued.privateKey });
      assert.equal(serving.status().source, 'uploaded');
      now += 3 * 86_400_000;
      await serving.refresh();
      assert.equal(serving.status().source, 'generated');
      assert.match(serving.status().warning ?? '', /the uploaded certificate is not served: certificate: expired/);
    } finally {
      serving.stop();
    }
  });

  test('validation without an FQDN does not ask for one', async () => {
    const corp = await ClusterCa.loadOrCreate(new MemoryKeyValue(), 'ca', { cluster: 'corp' });
    const issued = await corp.issueServingCertificate({ nodeName: 'mgmt', nodeIp: '192.0.2.10', vip: '192.0.2.10', fqdn: null });
    const checked = validateCertificateUpload({ certificate: issued.chain, privateKey: issued.privateKey }, { vip: '192.0.2.10', fqdn: null });
    assert.equal(checked.summary.warning, null);
    assert.deepEqual(checked.summary.dnsNames, ['mgmt']);
  });
});

async function freePort(): Promise<number> {
  return await new Promise((resolvePort, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function etcdHealthy(endpoint: string): Promise<boolean> {
  return await new Promise((resolveHealthy) => {
    httpGet(`${endpoint}/health`, (response) => {
      response.resume();
      resolveHealthy(response.statusCode === 200);
    }).on('error', () => resolveHealthy(false));
  });
}

describe('against a real etcd on loopback', { skip: existsSync('/usr/bin/etcd') ? false : '/usr/bin/etcd is not installed' }, () => {
  let etcd: ChildProcess;
  let dir: string;
  let endpoint: string;
  let store: EtcdStore;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vipd-etcd-'));
    const [client, peer] = [await freePort(), await freePort()];
    endpoint = `http://127.0.0.1:${client}`;
    const peerUrl = `http://127.0.0.1:${peer}`;
    etcd = spawn(
      '/usr/bin/etcd',
      [
        '--name', 'unit',
        '--data-dir', join(dir, 'data'),
        '--listen-client-urls', endpoint,
        '--advertise-client-urls', endpoint,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', `unit=${peerUrl}`,
        '--log-level', 'error',
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 20_000;
    while (!(await etcdHealthy(endpoint))) {
      if (Date.now() > deadline) throw new Error('etcd did not become healthy');
      await new Promise((resolveWait) => setTimeout(resolveWait, 100));
    }
    store = new EtcdStore({ endpoints: [endpoint], callTimeoutMs: 3000 });
  });

  after(() => {
    store?.close();
    etcd?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a cluster made before issue 14: the nodes role gains the cordons, priorities and admin-events ranges once, and only those', async () => {
    const old = new ClusterKeys('pre14');
    const newRanges = [old.cordonsPrefix, old.prioritiesPrefix, old.adminEventsPrefix];
    const auth = store.client.auth;
    await auth.roleAdd({ name: nodesRole(old) });
    for (const permission of sharedPermissions(old).filter((wanted) => !newRanges.includes(wanted.key))) {
      const end = permission.prefix ? Buffer.from(permission.key.slice(0, -1) + String.fromCharCode(permission.key.charCodeAt(permission.key.length - 1) + 1)) : Buffer.alloc(0);
      await auth.roleGrantPermission({ name: nodesRole(old), perm: { permType: permission.permission, key: Buffer.from(permission.key), range_end: end } });
    }
    const granted = await grantMissingSharedPermissions(store, old);
    assert.deepEqual(granted?.map((permission) => [permission.key, permission.permission, permission.prefix]), newRanges.map((key) => [key, 'Readwrite', true]));
    assert.deepEqual(await grantMissingSharedPermissions(store, old), [], 'idempotent: nothing left to grant');
    const role = await auth.roleGet({ role: nodesRole(old) });
    assert.equal(role.perm.length, sharedPermissions(old).length);
    assert.equal(await grantMissingSharedPermissions(store, new ClusterKeys('no-access-control')), null, 'no role: nothing to do');
  });

  test('CA race, tokens and certificate watch through EtcdKeyValue', async () => {
    const other = new EtcdStore({ endpoints: [endpoint], callTimeoutMs: 3000 });
    try {
      const [a, b] = await Promise.all([
        ClusterCa.loadOrCreate(new EtcdKeyValue(store), keys.ca, { cluster: 'demo' }),
        ClusterCa.loadOrCreate(new EtcdKeyValue(other), keys.ca, { cluster: 'demo' }),
      ]);
      assert.equal(a.caFingerprint(), b.caFingerprint(), 'one CA for both nodes');

      const tokens = new TokenStore(new EtcdKeyValue(store), keys);
      const created = await tokens.create({ role: 'read' });
      assert.equal((await new TokenStore(new EtcdKeyValue(other), keys).verify(created.token))?.id, created.record.id);
      assert.equal(await tokens.delete(created.record.id), true);
      assert.equal(await tokens.verify(created.token), null);

      const follower = new ServingCertificates({
        kv: new EtcdKeyValue(other), keys, ca: b, node: { name: 'node-2', ip: '192.0.2.12' }, vip: '192.0.2.10', fqdn: null, pollMs: 60_000,
      });
      await follower.start();
      try {
        const issued = await a.issueServingCertificate({ nodeName: 'mgmt', nodeIp: '192.0.2.10', vip: '192.0.2.10', fqdn: null });
        const summary = validateCertificateUpload({ certificate: issued.chain, privateKey: issued.privateKey }, { vip: '192.0.2.10', fqdn: null }).summary;
        const leader = new ServingCertificates({
          kv: new EtcdKeyValue(store), keys, ca: a, node: { name: 'node-1', ip: '192.0.2.11' }, vip: '192.0.2.10', fqdn: null,
        });
        await leader.start();
        await leader.upload({ certificate: issued.chain, privateKey: issued.privateKey });
        leader.stop();
        // The follower polls only once a minute: the etcd watch brings the change.
        const deadline = Date.now() + 5000;
        while (follower.status().fingerprint !== summary.fingerprint && Date.now() < deadline) {
          await new Promise((resolveWait) => setTimeout(resolveWait, 50));
        }
        assert.equal(follower.status().fingerprint, summary.fingerprint);
      } finally {
        follower.stop();
      }
    } finally {
      other.close();
    }
  });

  test('join claims: of concurrent joins of one name, or of one IP, exactly one wins; the losers are told which field', async () => {
    const claimKeys = new ClusterKeys('claims');
    const sameName = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => claimNameAndIp(store, claimKeys, 'racer', `192.0.2.${100 + i}`)));
    assert.equal(sameName.filter((result) => result.status === 'fulfilled').length, 1);
    for (const result of sameName) if (result.status === 'rejected') assert.match(String(result.reason), /node\.name: "racer" is claimed/);
    const sameIp = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => claimNameAndIp(store, claimKeys, `node-${i}`, '192.0.2.200')));
    assert.equal(sameIp.filter((result) => result.status === 'fulfilled').length, 1);
    for (const result of sameIp) if (result.status === 'rejected') assert.match(String(result.reason), /node\.interface: the management IP 192\.0\.2\.200 is claimed/);
    // A registered node's name cannot be claimed; a released claim can.
    await store.put(claimKeys.node('registered'), JSON.stringify({ name: 'registered', ip: '192.0.2.201' }));
    await assert.rejects(claimNameAndIp(store, claimKeys, 'registered', '192.0.2.202'), /node\.name: "registered" is already registered/);
    await releaseClaims(store, claimKeys, 'racer', null);
    const winnerIp = (sameName.find((result) => result.status === 'fulfilled') ? await store.getPrefix(`${claimKeys.prefix}claims/ip/192.0.2.1`) : [])[0]!;
    await releaseClaims(store, claimKeys, 'racer', winnerIp.key.split('/').pop()!);
    await (await claimNameAndIp(store, claimKeys, 'racer', '192.0.2.150'))();
    // A claim whose join never registered its node is stale after CLAIM_STALE_MS, and taken over.
    const later = Date.now() + CLAIM_STALE_MS + 1000;
    const stuck = sameIp.findIndex((result) => result.status === 'fulfilled');
    await claimNameAndIp(store, claimKeys, 'newcomer', '192.0.2.200', () => later);
    assert.equal(JSON.parse((await store.get(claimKeys.ipClaim('192.0.2.200')))!.value).node, 'newcomer', `node-${stuck}'s stale claim was taken over`);
  });

  test('vipd token create | list | delete', async () => {
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      [
        'cluster: clitest',
        'node: { name: node-1, interface: lo }',
        'vip: { mode: static, address: 192.0.2.10 }',
        `etcd: { endpoints: ["${endpoint}"] }`,
        '',
      ].join('\n'),
    );
    const cli = resolve(__dirname, '..', '..', 'src', 'main.js');
    const run = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolveRun) => {
        const child = spawn(process.execPath, [cli, 'token', ...args, '--config', config]);
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        child.on('close', (code) => resolveRun({ code: code ?? -1, stdout, stderr }));
      });

    const created = await run('create', '--role', 'admin', '--ttl', '2h', '--description', 'ci pipeline');
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^vipd_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}\n$/);
    assert.match(created.stderr, /cannot be shown again/);
    const token = created.stdout.trim();
    const id = token.slice(5, 21);

    const listed = await run('list', '-o', 'json');
    assert.equal(listed.code, 0, listed.stderr);
    const records = JSON.parse(listed.stdout).tokens as Array<{ id: string; role: string; description: string }>;
    assert.deepEqual(records.map(({ id: recordId, role, description }) => ({ id: recordId, role, description })), [
      { id, role: 'admin', description: 'ci pipeline' },
    ]);
    assert.ok(!listed.stdout.includes(token.split('.')[1]!), 'list never shows the secret');
    const table = await run('list');
    assert.match(table.stdout, new RegExp(`^${id}\\s+admin\\s+`, 'm'));

    const forever = await run('create', '--role', 'join', '--ttl', 'never');
    assert.equal(forever.code, 2);
    assert.match(forever.stderr, /--ttl: a join token must expire/);
    const readUses = await run('create', '--role', 'read', '--uses', '2');
    assert.equal(readUses.code, 2);
    assert.match(readUses.stderr, /--uses: only join tokens/);

    const badRole = await run('create', '--role', 'root');
    assert.equal(badRole.code, 2);
    assert.match(badRole.stderr, /--role: must be "read", "admin" or "join"/);

    assert.equal((await run('delete', id)).code, 0);
    const again = await run('delete', id);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /no token with id/);
  });
});
