import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { etcdArguments } from '../../src/cluster/embedded-etcd';
import { managementUrl } from '../../src/cluster/init';
import { completeInteractively, formatInitResult, type Prompter } from '../../src/cli/init';
import { JoinClient, parseServerUrl } from '../../src/cluster/join-client';
import { JOIN_SERVER_NAME, type JoinClusterInfo, type JoinRequest, type JoinResponse } from '../../src/cluster/join-protocol';
import type { JoinHandler } from '../../src/cluster/join-service';
import { caHash, ClusterIssuer, generateKeyPair } from '../../src/cluster/pki';
import { renderDropIn, renderUnit } from '../../src/cluster/service';
import { resolveConfig } from '../../src/config/config';
import { ClusterKeys } from '../../src/store/keys';
import { ClusterCa } from '../../src/security/ca';
import { MemoryKeyValue } from '../../src/store/kv';
import { securityKeys } from '../../src/store/keys';
import { parseJoinToken, TokenStore } from '../../src/security/tokens';
import { listenApiServer } from '../../src/api/server';
import { createApiWorld, FQDN, type ApiWorld } from './fakes';

const keys = securityKeys(new ClusterKeys('demo'));

describe('join tokens', () => {
  test('a join token carries the CA hash and is refused as an API bearer token', async () => {
    const kv = new MemoryKeyValue();
    const ca = await ClusterCa.loadOrCreate(kv, keys.ca, { cluster: 'demo' });
    const tokens = new TokenStore(kv, keys);
    const created = await tokens.create({ role: 'join' });
    const parsed = parseJoinToken(created.token);
    assert.ok(parsed, created.token);
    assert.equal(parsed.caHash, caHash(ca.certificatePem));
    assert.equal(parsed.caHash, ca.caFingerprint().replace(/:/g, '').toLowerCase());
    assert.equal(await tokens.verify(parsed.bearer), null, 'not a bearer token for the API');
    assert.deepEqual(await tokens.checkJoin(parsed.bearer), { ok: true, record: created.record });
    const admin = await tokens.create({ role: 'admin' });
    assert.deepEqual(await tokens.checkJoin(admin.token), { ok: false, reason: 'invalid' }, 'an API token does not join');
  });

  test('expired and wrong join tokens are told apart only for whoever knows the secret', async () => {
    let now = Date.now();
    const kv = new MemoryKeyValue();
    await ClusterCa.loadOrCreate(kv, keys.ca, { cluster: 'demo' });
    const tokens = new TokenStore(kv, keys, () => new Date(now));
    const { token } = await tokens.create({ role: 'join', ttlMs: 1000 });
    const bearer = parseJoinToken(token)!.bearer;
    assert.deepEqual(await tokens.checkJoin(`${bearer.slice(0, -4)}AAAA`), { ok: false, reason: 'invalid' });
    now += 2000;
    assert.deepEqual(await tokens.checkJoin(bearer), { ok: false, reason: 'expired' });
    assert.deepEqual(await tokens.checkJoin(`${bearer.slice(0, -4)}AAAA`), { ok: false, reason: 'invalid' });
  });

  test('there is no join token without a cluster CA; malformed tokens do not parse', async () => {
    await assert.rejects(new TokenStore(new MemoryKeyValue(), keys).create({ role: 'join' }), /cluster CA/);
    for (const bad of ['', 'vipd-join:abc:vipd_0123456789abcdef.x', `vipd-join:${'a'.repeat(64)}:admin`, `vipd_${'0'.repeat(16)}.${'x'.repeat(43)}`]) {
      assert.equal(parseJoinToken(bad), null, bad);
    }
  });
});

describe('the embedded store\'s PKI', () => {
  test('certificates issued for a public key chain to the cluster CA, with the right uses', async () => {
    const material = await ClusterCa.generate({ cluster: 'demo' });
    const issuer = await ClusterIssuer.fromMaterial(material);
    const pair = await generateKeyPair();
    const pem = await issuer.issue({ commonName: 'node-2', publicKeyPem: pair.publicKeyPem, uses: ['server', 'client'], altNames: ['192.0.2.12', 'node-2'] });
    const certificate = new X509Certificate(pem);
    const ca = new X509Certificate(material.certificate);
    assert.ok(certificate.checkIssued(ca) && certificate.verify(ca.publicKey));
    assert.equal(certificate.checkIP('192.0.2.12'), '192.0.2.12');
    assert.ok(certificate.keyUsage?.includes('1.3.6.1.5.5.7.3.1') && certificate.keyUsage.includes('1.3.6.1.5.5.7.3.2'));
    assert.equal(certificate.publicKey.export({ type: 'spki', format: 'pem' }).toString(), pair.publicKeyPem.replace(/\r\n/g, '\n').trimEnd() + '\n');
  });

  test('etcd runs with client and peer certificate auth from the node\'s PKI directory', () => {
    const config = resolveConfig({
      cluster: 'demo',
      node: { name: 'node-1', interface: 'mgmt-br' },
      vip: { mode: 'static', address: '192.0.2.10' },
      etcd: {
        endpoints: ['https://192.0.2.11:2379'],
        tls: { ca: '/d/pki/ca.pem', cert: '/d/pki/etcd-client.pem', key: '/d/pki/etcd-client-key.pem' },
        embedded: { dataDir: '/d/etcd', pkiDir: '/d/pki', clientURL: 'https://192.0.2.11:2379', peerURL: 'https://192.0.2.11:2380', initialCluster: 'node-1=https://192.0.2.11:2380', initialClusterState: 'new' },
      },
    });
    const args = etcdArguments(config, config.etcd.embedded!).join(' ');
    for (const expected of ['--client-cert-auth', '--peer-client-cert-auth', '--trusted-ca-file /d/pki/ca.pem', '--peer-trusted-ca-file /d/pki/ca.pem',
      '--cert-file /d/pki/etcd-server.pem', '--peer-cert-file /d/pki/etcd-peer.pem', '--initial-cluster-state new',
      // Derived from the default profile (src/config/etcd-timing.ts), not etcd's 1 s.
      '--election-timeout 630', '--heartbeat-interval 63', '--pre-vote=true']) {
      assert.ok(args.includes(expected), expected);
    }
  });

  test('an embedded store without a client certificate is refused, naming etcd.tls', () => {
    assert.throws(
      () => resolveConfig({
        cluster: 'demo',
        node: { name: 'node-1', interface: 'mgmt-br' },
        vip: { mode: 'static', address: '192.0.2.10' },
        etcd: { endpoints: ['https://192.0.2.11:2379'], embedded: { dataDir: '/d/etcd', pkiDir: '/d/pki', clientURL: 'https://192.0.2.11:2379', peerURL: 'https://192.0.2.11:2380', initialCluster: 'node-1=https://192.0.2.11:2380', initialClusterState: 'new' } },
      }),
      /etcd\.tls: needs ca, cert and key/,
    );
  });
});

/** A join handler that answers from memory; the real one is exercised by the lab test. */
class FakeJoinHandler implements JoinHandler {
  joined: JoinRequest[] = [];
  private context: SecureContext | null = null;

  constructor(private readonly world: ApiWorld) {}

  async sniContext(): Promise<SecureContext | null> {
    if (!this.context) {
      const issued = await this.world.ca.issueServingCertificate({ nodeName: 'node-2', nodeIp: '127.0.0.1', vip: '192.0.2.10', fqdn: null });
      this.context = createSecureContext({ key: issued.privateKey, cert: issued.chain });
    }
    return this.context;
  }

  checkToken(bearer: string) {
    return this.world.tokens.checkJoin(bearer);
  }

  async clusterInfo(): Promise<JoinClusterInfo> {
    return { cluster: 'demo', vip: { mode: 'static', address: '192.0.2.10', hwaddr: null }, nodes: [{ name: 'node-1', ip: '192.0.2.11', mac: '02:00:00:00:00:01', alive: true }], store: 'embedded' };
  }

  async join(request: JoinRequest): Promise<JoinResponse> {
    this.joined.push(request);
    return {
      cluster: 'demo',
      config: { cluster: 'demo', vip: { mode: 'static', address: '192.0.2.10' } },
      store: { kind: 'embedded', role: 'agent', endpoints: ['https://192.0.2.11:2379'] },
      certificates: { ca: this.world.ca.certificatePem, client: null, server: null, peer: null },
      servedBy: 'node-2',
    };
  }
}

describe('the join API and the joining client', () => {
  let world: ApiWorld;
  let handler: FakeJoinHandler;
  let joinToken: string;
  let origin: string;

  before(async () => {
    const holder: { handler?: FakeJoinHandler } = {};
    const lazy: JoinHandler = {
      sniContext: () => holder.handler!.sniContext(),
      checkToken: (bearer) => holder.handler!.checkToken(bearer),
      clusterInfo: () => holder.handler!.clusterInfo(),
      join: (request) => holder.handler!.join(request),
    };
    world = await createApiWorld({ join: lazy });
    handler = new FakeJoinHandler(world);
    holder.handler = handler;
    joinToken = (await world.tokens.create({ role: 'join' })).token;
    const address = await listenApiServer(world.app, { port: 0, host: '127.0.0.1' });
    origin = `https://127.0.0.1:${address.port}`;
  });

  after(async () => {
    await world.app.close();
    world.certificates.stop();
  });

  test('the join routes want a join token; API tokens and strangers get 401 before the body is read', async () => {
    for (const authorization of [undefined, `Bearer ${world.adminToken}`, 'Bearer nonsense']) {
      const response = await world.app.inject({ method: 'GET', url: '/v1/join/cluster', headers: authorization ? { authorization } : {} });
      assert.equal(response.statusCode, 401, authorization);
      assert.match(response.json().message as string, /the join token is not valid/);
    }
    const bearer = parseJoinToken(joinToken)!.bearer;
    const nodes = await world.app.inject({ method: 'GET', url: '/v1/nodes', headers: { authorization: `Bearer ${bearer}` } });
    assert.equal(nodes.statusCode, 401, 'a join token opens nothing else');
    const bad = await world.app.inject({ method: 'POST', url: '/v1/join', headers: { authorization: `Bearer ${bearer}` }, payload: {
      name: 'Node_2', interface: 'mgmt-br', ip: '192.0.2.13', prefixLength: 24, mac: '02:00:00:00:00:03', mtu: 1500,
      publicKeys: { client: 'x', server: 'x', peer: 'x' },
    } });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().message as string, /^name: must be a DNS-label-like node name/);
    assert.equal(handler.joined.length, 0);
  });

  test('with an uploaded certificate from another CA that names only the FQDN, joining by IP still verifies the server', async () => {
    const other = await ClusterCa.loadOrCreate(new MemoryKeyValue(), 'ca', { cluster: 'corp' });
    const uploaded = await other.issueServingCertificate({ nodeName: 'www', nodeIp: '198.51.100.99', vip: FQDN, fqdn: FQDN });
    await world.certificates.upload({ certificate: uploaded.chain, privateKey: uploaded.privateKey });
    const client = await JoinClient.connect(origin, joinToken);
    assert.equal(caHash(client.caPem), parseJoinToken(joinToken)!.caHash);
    const info = await client.clusterInfo();
    assert.equal(info.vip.address, '192.0.2.10');
    const pairs = { client: await generateKeyPair(), server: await generateKeyPair(), peer: await generateKeyPair() };
    const response = await client.join({
      name: 'node-3', interface: 'mgmt-br', ip: '192.0.2.13', prefixLength: 24, mac: '02:00:00:00:00:03', mtu: 1500,
      publicKeys: { client: pairs.client.publicKeyPem, server: pairs.server.publicKeyPem, peer: pairs.peer.publicKeyPem },
    });
    assert.equal(response.servedBy, 'node-2');
    assert.equal(handler.joined.at(-1)?.name, 'node-3');
  });

  test('a token naming another CA is refused before its secret is sent', async () => {
    const before = handler.joined.length;
    const forged = joinToken.replace(/^vipd-join:[0-9a-f]{64}:/, `vipd-join:${'0'.repeat(64)}:`);
    await assert.rejects(JoinClient.connect(origin, forged), /--token: .* does not present the cluster CA this token names/);
    await assert.rejects(JoinClient.connect(origin, 'vipd_abc'), /--token: is not a join token/);
    await assert.rejects(JoinClient.connect('http://127.0.0.1', joinToken), /must be an https:\/\/ URL/);
    assert.equal(handler.joined.length, before);
  });

  test('the join server name is reserved for the cluster CA\'s certificate', () => {
    assert.equal(JOIN_SERVER_NAME.endsWith('.invalid'), true);
    assert.deepEqual(parseServerUrl('https://[2001:db8::10]:8443'), { origin: 'https://[2001:db8::10]:8443', host: '2001:db8::10', port: 8443 });
  });
});

describe('what init asks and prints', () => {
  const interfaces = [
    { name: 'eno1', mac: '02:00:00:00:00:01', addresses: ['192.0.2.11/24'], usable: true },
    { name: 'eno2', mac: '02:00:00:00:00:02', addresses: [], usable: false },
  ];
  const defaults = { apiPort: '443', dataDir: '/var/lib/vipd', config: '/etc/vipd/config.yaml', etcdVoters: '3', tokenTtl: '24h' };

  test('on a terminal it asks for the interface (by number), VIP mode, VIP, FQDN and cluster name', async () => {
    const answers = ['1', 'static', '192.0.2.10', 'vip.example.com', 'prod'];
    const asked: string[] = [];
    const prompter: Prompter = { ask: async (question) => (asked.push(question), answers.shift() ?? ''), close: () => undefined };
    const filled = await completeInteractively(defaults, interfaces, prompter);
    assert.deepEqual([filled.interface, filled.vipMode, filled.vip, filled.fqdn, filled.cluster], ['eno1', 'static', '192.0.2.10', 'vip.example.com', 'prod']);
    assert.equal(asked.length, 5);
  });

  test('without a terminal, a missing value names its flag', async () => {
    await assert.rejects(completeInteractively(defaults, interfaces, null), /--interface: is required/);
    await assert.rejects(completeInteractively({ ...defaults, interface: 'eno1' }, interfaces, null), /--vip: is required/);
    const filled = await completeInteractively({ ...defaults, interface: 'eno1', vip: '192.0.2.10' }, interfaces, null);
    assert.deepEqual([filled.vipMode, filled.cluster, filled.fqdn], ['static', 'vipd', undefined]);
  });
});

describe('what init prints and installs', () => {
  test('the management address, this node and the join command', () => {
    const config = resolveConfig({ cluster: 'demo', node: { name: 'node-1', interface: 'mgmt-br' }, vip: { mode: 'static', address: '192.0.2.10' }, etcd: { endpoints: ['https://192.0.2.11:2379'] } });
    const text = formatInitResult({
      config, nodeIp: '192.0.2.11', managementUrl: managementUrl('192.0.2.10', 443), token: 'vipd-join:x', tokenExpires: null,
      clusterKey: 'vipd-key:K', caFingerprint: 'AB', etcdAccessManaged: false, started: { how: 'background', pid: 42, logPath: '/d/vipd.log', pidPath: '/d/vipd.pid' }, holder: 'node-1', dhcp: null,
    });
    assert.match(text, /Management address +https:\/\/192\.0\.2\.10\n/);
    assert.match(text, /This node +node-1, 192\.0\.2\.11 on mgmt-br/);
    assert.match(text, /\n  vipd join https:\/\/192\.0\.2\.10 --token vipd-join:x\n/);
    assert.match(text, /\n  VIPD_CLUSTER_KEY=vipd-key:K vipd join https:\/\/192\.0\.2\.10 --token vipd-join:x\n/);
    assert.equal(managementUrl('2001:db8::10', 8443), 'https://[2001:db8::10]:8443');
  });

  test('a unit for installs without the package, a drop-in only for non-default paths', () => {
    assert.match(renderUnit('/srv/vipd.yaml', '/srv/vipd'), /\nExecStart=\S+ \S+\/dist\/vipd\.js run --config \/srv\/vipd\.yaml\n/);
    assert.match(renderUnit('/srv/vipd.yaml', '/srv/vipd'), /\nKillMode=process\n/);
    assert.equal(renderDropIn('/etc/vipd/config.yaml', '/var/lib/vipd'), null);
    assert.match(renderDropIn('/srv/vipd.yaml', '/srv/vipd') ?? '', /^\[Service\]\nExecStart=\nExecStart=.* run --config \/srv\/vipd\.yaml\nReadWritePaths=\/srv\/vipd\n$/);
  });
});

