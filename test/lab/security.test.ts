/**
 * Security checks on a lab: who the API refuses, that every port a node's vipd opens speaks
 * TLS, that a config others could rewrite is refused, and that no secret (token, private
 * key) ever shows up in logs, status or the history. With the embedded etcd: client and
 * peer TLS, and a client without a certificate refused.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { createToken, curlVip, fetchClusterCa, uploadCertificate, type UploadedCertificate } from '../../lab/chaos/cluster-setup';
import { inNamespace, Lab, type LabNode } from '../../lab/lab';
import { VipObserver } from '../../lab/observer';
import { run, waitFor } from '../../lab/shell';
import { assertNeverTwoHolders, explained, singleHolder, stopObserver } from './helpers';

const CLI = join(__dirname, '..', '..', 'src', 'main.js');
const EMBEDDED_ETCD = join(__dirname, '..', '..', 'src', 'cluster', 'embedded-etcd.js');

interface Listener {
  protocol: 'tcp' | 'udp';
  host: string;
  port: number;
  pids: number[];
  line: string;
}

/** Listening TCP and UDP sockets in a namespace, with the pids that own them (`ss -Hlntup`). */
async function listeners(namespace: string): Promise<Listener[]> {
  const result = await run('ip', ['netns', 'exec', namespace, 'ss', '-Hlntup']);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => {
      const columns = line.trim().split(/\s+/);
      const local = columns[4] ?? '';
      const separator = local.lastIndexOf(':');
      const pids = [...line.matchAll(/pid=(\d+)/g)].map((match) => Number(match[1]));
      return { protocol: columns[0] === 'udp' ? 'udp' : 'tcp', host: local.slice(0, separator).replace(/%.*$/, ''), port: Number(local.slice(separator + 1)), pids, line };
    });
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** The lab's own helpers, not vipd: the whoami server every node runs for the client. */
function isLabHelper(command: string): boolean {
  return command.includes('createServer((s) => s.end(');
}

/** Where to connect to reach a listener from inside its namespace. */
function connectHost(host: string): string {
  if (host === '*' || host === '0.0.0.0') return '127.0.0.1';
  if (host === '[::]') return '::1';
  return host.replace(/^\[(.*)\]$/, '$1');
}

/** Whether a TLS server answers there: it presents a certificate in the handshake. */
async function speaksTls(namespace: string, host: string, port: number): Promise<{ tls: boolean; output: string }> {
  const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const result = await run('ip', ['netns', 'exec', namespace, 'sh', '-c', `timeout 10 openssl s_client -connect '${target}' -showcerts </dev/null 2>&1`]);
  return { tls: /-----BEGIN CERTIFICATE-----/.test(result.stdout), output: result.stdout.slice(0, 600) };
}

/** A plaintext HTTP request: a TLS server must not answer it as HTTP. */
async function answersPlainHttp(namespace: string, host: string, port: number): Promise<boolean> {
  const target = host.includes(':') ? `[${host}]` : host;
  const result = await run('ip', ['netns', 'exec', namespace, 'curl', '-sS', '--max-time', '3', '-o', '/dev/null', '-w', '%{http_code}', `http://${target}:${port}/`]);
  return result.code === 0 && /^[1-5]\d\d$/.test(result.stdout) && result.stdout !== '400';
}

/** The PEM body lines of a key or certificate, long enough to be unmistakable. */
function pemBodyLines(pem: string): string[] {
  return pem
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 24 && !line.startsWith('-----'));
}

describe('security checks on a 3-node lab', { timeout: 600_000 }, () => {
  let lab: Lab;
  let observer: VipObserver;
  let adminToken = '';
  let readToken = '';
  let otherClusterToken = '';
  let clusterCaPath = '';
  let uploaded: UploadedCertificate | null = null;

  /** The CA clients must trust now: the uploaded certificate's issuer once one is uploaded. */
  const trusted = () => uploaded?.issuerPath ?? clusterCaPath;

  before(async () => {
    lab = await Lab.create({ nodes: 3 });
    await lab.startEtcd();
    observer = await VipObserver.start(lab.vip, lab.nodes);
    for (const node of lab.nodes) lab.startAgent(node);
    await singleHolder(lab, observer, 30_000);
    const node = lab.nodes[0]!;
    clusterCaPath = (await fetchClusterCa(lab, node)).path;
    adminToken = await createToken(lab, node, 'admin');
    readToken = await createToken(lab, node, 'read');
    // Another cluster sharing the etcd: an admin token of its own, stored under /vipd/other/.
    const otherConfig = join(lab.dir, 'other-cluster.yaml');
    writeFileSync(otherConfig, toYaml({ ...(parseYaml(readFileSync(node.configPath, 'utf8')) as object), cluster: 'other' }), { mode: 0o600 });
    otherClusterToken = await createToken(lab, node, 'admin', otherConfig);
  });

  after(async () => {
    try {
      stopObserver(observer);
    } finally {
      await lab?.destroy();
    }
  });

  test('the API refuses no token and another cluster\'s admin token (401), and a read token on a mutation (403), changing nothing', () =>
    explained(lab, async () => {
      const holder = await singleHolder(lab, observer);
      const historyBefore = await lab.etcdctl('get', '--prefix', '--keys-only', '/vipd/lab/events/');
      const caPath = trusted();
      for (const path of ['/v1/management-address', '/v1/nodes', '/v1/about', '/v1/events']) {
        assert.equal((await curlVip(lab, path, { caPath })).status, 401, `${path} without a token`);
        assert.equal((await curlVip(lab, path, { caPath, token: otherClusterToken })).status, 401, `${path} with another cluster's token`);
        assert.equal((await curlVip(lab, path, { caPath, token: readToken })).status, 200, `${path} with a read token`);
      }
      const target = lab.nodes.find((node) => node !== holder)!;
      const moveBody = join(lab.dir, 'move.json');
      writeFileSync(moveBody, JSON.stringify({ to: target.name }));
      const certBody = join(lab.dir, 'bogus-cert.json');
      writeFileSync(certBody, JSON.stringify({ certificate: 'x', privateKey: 'y' }));
      for (const [method, path, bodyFile] of [['POST', '/v1/management-address/move', moveBody], ['PUT', '/v1/settings/ssl-certificates', certBody]] as const) {
        assert.equal((await curlVip(lab, path, { caPath, method, bodyFile })).status, 401, `${method} ${path} without a token`);
        assert.equal((await curlVip(lab, path, { caPath, method, bodyFile, token: otherClusterToken })).status, 401, `${method} ${path} with another cluster's token`);
        const read = await curlVip(lab, path, { caPath, method, bodyFile, token: readToken });
        assert.equal(read.status, 403, `${method} ${path} with a read token: ${read.body}`);
        assert.deepEqual(Object.keys(JSON.parse(read.body) as object), ['error', 'message']);
      }
      assert.deepEqual(observer.currentHolders(), [holder.name], 'the VIP did not move');
      assert.equal(await lab.etcdctl('get', '--prefix', '--keys-only', '/vipd/lab/events/'), historyBefore, 'no history entry was written');
      assertNeverTwoHolders(observer);
    }));

  test('no plaintext listening port on a node: every TCP port vipd opens speaks TLS, and it opens no UDP port', (t) =>
    explained(lab, async () => {
      for (const node of lab.nodes) {
        const found = await listeners(node.namespace);
        const vipdSockets = found.filter((listener) => !listener.pids.every((pid) => isLabHelper(commandLine(pid))));
        assert.ok(vipdSockets.length > 0, `${node.name}: vipd listens on nothing? ${JSON.stringify(found)}`);
        for (const listener of vipdSockets) {
          const owners = listener.pids.map(commandLine).join(' | ');
          assert.equal(listener.protocol, 'tcp', `${node.name}: vipd listens on UDP: ${listener.line} (${owners})`);
          const host = connectHost(listener.host);
          const tls = await speaksTls(node.namespace, host, listener.port);
          assert.ok(tls.tls, `${node.name}: port ${listener.port} (${owners}) does not speak TLS:\n${tls.output}`);
          assert.equal(await answersPlainHttp(node.namespace, host, listener.port), false, `${node.name}: port ${listener.port} answers plaintext HTTP`);
          t.diagnostic(`${node.name}: ${listener.protocol} ${listener.host}:${listener.port} speaks TLS`);
        }
      }
    }));

  test('vipd run refuses a config file writable by others, before touching anything', () =>
    explained(lab, async () => {
      const node = lab.nodes[2]!;
      const loose = join(lab.dir, 'loose.yaml');
      writeFileSync(loose, readFileSync(node.configPath));
      chmodSync(loose, 0o666);
      const result = await run(...inNamespace(node.namespace, process.execPath, CLI, 'run', '--config', loose), 30_000);
      assert.equal(result.code, 2, result.stderr);
      assert.equal(result.stderr, `vipd: --config: ${loose} is writable by its group and every user (mode 0666); run: chmod go-w ${loose}\n`);
      chmodSync(loose, 0o664);
      const group = await run(...inNamespace(node.namespace, process.execPath, CLI, 'status', '--config', loose), 30_000);
      assert.equal(group.code, 2);
      assert.match(group.stderr, /--config: .* is writable by its group \(mode 0664\)/);
    }));

  test('token secrets and private keys never appear in agent logs, `vipd status` or the history', () =>
    explained(lab, async () => {
      uploaded = await uploadCertificate(lab, adminToken, clusterCaPath);
      const caPath = trusted();
      await waitFor('the uploaded certificate to be served', async () => (await curlVip(lab, '/ping', { caPath })).status === 200, 20_000, 200);
      // Requests that log: reads, a refused token, a planned move.
      assert.equal((await curlVip(lab, '/v1/nodes', { caPath, token: adminToken })).status, 200);
      assert.equal((await curlVip(lab, '/v1/nodes', { caPath, token: `${adminToken.slice(0, -4)}AAAA` })).status, 401);
      const holder = await singleHolder(lab, observer);
      const target = lab.nodes.find((node) => node !== holder)!;
      const moveBody = join(lab.dir, 'move-admin.json');
      writeFileSync(moveBody, JSON.stringify({ to: target.name }));
      await curlVip(lab, '/v1/management-address/move', { caPath, method: 'POST', bodyFile: moveBody, token: adminToken });
      await waitFor(`${target.name} to hold the VIP`, () => observer.currentHolders().join() === target.name, 20_000, 20);

      const ca = JSON.parse(await lab.etcdctl('get', '/vipd/lab/security/ca', '--print-value-only')) as { privateKey: string };
      const secrets = new Map<string, string>();
      for (const [name, token] of [['admin token', adminToken], ['read token', readToken], ['other cluster token', otherClusterToken]] as const) {
        secrets.set(`${name} secret`, token.split('.')[1]!);
      }
      pemBodyLines(uploaded.privateKey).forEach((line, i) => secrets.set(`uploaded private key line ${i + 1}`, line));
      pemBodyLines(ca.privateKey).forEach((line, i) => secrets.set(`cluster CA private key line ${i + 1}`, line));
      assert.ok(secrets.size >= 5);

      const places = new Map<string, string>();
      for (const node of lab.nodes) {
        places.set(`${node.name} agent log`, readFileSync(node.logPath, 'utf8'));
        const json = await lab.vipd(node, ['status', '--config', node.configPath, '-o', 'json']);
        assert.equal(json.code, 0, json.stderr);
        places.set(`${node.name} vipd status -o json`, json.stdout + json.stderr);
        const yaml = await lab.vipd(node, ['status', '--config', node.configPath, '-o', 'yaml']);
        places.set(`${node.name} vipd status -o yaml`, yaml.stdout + yaml.stderr);
        const list = await lab.vipd(node, ['token', 'list', '-o', 'json', '--config', node.configPath]);
        places.set(`${node.name} vipd token list`, list.stdout + list.stderr);
      }
      const events = await curlVip(lab, '/v1/events', { caPath, token: readToken });
      assert.equal(events.status, 200);
      places.set('GET /v1/events', events.body);
      places.set('GET /v1/management-address', (await curlVip(lab, '/v1/management-address', { caPath, token: readToken })).body);
      places.set('etcd history keys', await lab.etcdctl('get', '--prefix', '/vipd/lab/events/'));
      const logs = [...places].filter(([place]) => place.endsWith('agent log')).map(([, text]) => text);
      assert.ok(logs.some((text) => text.includes('"msg":"serving certificate uploaded"')), 'the upload was logged (by fingerprint) by the node that took it');

      for (const [place, text] of places) {
        assert.doesNotMatch(text, /PRIVATE KEY/, `${place} holds a private key`);
        assert.doesNotMatch(text, /authorization/i, `${place} holds an Authorization header`);
        for (const [name, secret] of secrets) assert.ok(!text.includes(secret), `${place} holds the ${name}`);
      }
      assertNeverTwoHolders(observer);
    }));
});

const embeddedSkip = existsSync(EMBEDDED_ETCD)
  ? false
  : `embedded mode is not built (${EMBEDDED_ETCD} is missing): the embedded etcd's client and peer TLS checks need it`;

describe('embedded etcd: client and peer TLS', { timeout: 600_000, skip: embeddedSkip }, () => {
  let lab: Lab;
  let node: LabNode;
  const dataDir = () => join(lab.dir, 'nodes', node.name);
  const pki = (file: string) => join(dataDir(), 'pki', file);

  async function etcdctl(args: string[], tls: { cacert?: boolean; cert?: boolean }): Promise<{ code: number; output: string }> {
    const flags = [
      `--endpoints=https://${node.ip}:2379`,
      '--dial-timeout=3s',
      '--command-timeout=3s',
      ...(tls.cacert ? [`--cacert=${pki('ca.pem')}`] : ['--insecure-skip-tls-verify']),
      ...(tls.cert ? [`--cert=${pki('etcd-client.pem')}`, `--key=${pki('etcd-client-key.pem')}`] : []),
    ];
    const result = await run('ip', ['netns', 'exec', node.namespace, 'etcdctl', ...flags, ...args], 20_000);
    return { code: result.code, output: result.stdout + result.stderr };
  }

  before(async () => {
    lab = await Lab.create({ nodes: 3 });
    node = lab.nodes[0]!;
    const result = await run(...inNamespace(node.namespace, process.execPath, CLI, 'init', '--interface', 'mgmt-br', '--vip', lab.vip, '--cluster', 'lab',
      '--node-name', node.name, '--data-dir', dataDir(), '--config', join(dataDir(), 'config.yaml'), '--yes'), 180_000);
    assert.equal(result.code, 0, `vipd init failed:\n${result.stdout}\n${result.stderr}`);
    await waitFor('the embedded etcd to answer with the node\'s client certificate', async () => (await etcdctl(['endpoint', 'health'], { cacert: true, cert: true })).code === 0, 60_000, 500);
  });

  after(async () => {
    await lab?.destroy();
  });

  test('a client with the cluster CA and a client certificate is served', async () => {
    const result = await etcdctl(['get', '--prefix', '--keys-only', '/vipd/lab/nodes/'], { cacert: true, cert: true });
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /\/vipd\/lab\/nodes\/node-1/);
  });

  test('a client without a certificate is refused, even one that skips server verification', async () => {
    for (const tls of [{ cacert: true }, {}]) {
      const result = await etcdctl(['get', '--prefix', '--keys-only', '/vipd/'], tls);
      assert.notEqual(result.code, 0, `served without a client certificate: ${result.output}`);
      assert.doesNotMatch(result.output, /\/vipd\/lab\//);
    }
  });

  test('client and peer ports speak TLS only: no plaintext answer, and the peer port wants a certificate', async () => {
    for (const port of [2379, 2380]) {
      const tls = await speaksTls(node.namespace, node.ip, port);
      assert.ok(tls.tls, `port ${port} does not speak TLS:\n${tls.output}`);
      assert.equal(await answersPlainHttp(node.namespace, node.ip, port), false, `port ${port} answers plaintext HTTP`);
    }
    // The peer port's members API without a client certificate.
    const peer = await run('ip', ['netns', 'exec', node.namespace, 'curl', '-sS', '--max-time', '5', '-k', `https://${node.ip}:2380/members`]);
    assert.ok(peer.code !== 0 || !peer.stdout.includes('peerURLs'), `the peer port served /members without a client certificate: ${peer.stdout}`);
  });

  test('every listening port in the node namespace (agent and etcd) speaks TLS', async (t) => {
    const found = await listeners(node.namespace);
    for (const listener of found.filter((candidate) => !candidate.pids.every((pid) => isLabHelper(commandLine(pid))))) {
      assert.equal(listener.protocol, 'tcp', `UDP listener: ${listener.line}`);
      const tls = await speaksTls(node.namespace, connectHost(listener.host), listener.port);
      assert.ok(tls.tls, `port ${listener.port} (${listener.pids.map(commandLine).join(' | ')}) does not speak TLS:\n${tls.output}`);
      t.diagnostic(`${listener.protocol} ${listener.host}:${listener.port} speaks TLS`);
    }
  });
});
