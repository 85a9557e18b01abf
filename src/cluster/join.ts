import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config/config';
import { readCa } from '../config/referenced-files';
import { InputError } from '../config/schema-check';
import { Netlink } from '../holding/netlink';
import { certificateCommonName, certificateFingerprint } from '../security/ca';
import { nodeUser } from '../store/access';
import { formatClusterKey, parseClusterKey, signerProof } from '../security/cluster-key';
import { managementUrl } from './init';
import { JoinClient } from './join-client';
import type { JoinResponse } from './join-protocol';
import { checkNode, checkNodesReachable, checkPathsFree, interfaceForVip, waitForAgent, writeConfigFile } from './node-setup';
import { clusterKeyPath, generateKeyPair, pkiPaths, servingCertificatePaths, writePrivateFile, type KeyPair } from './pki';
import { startAgent, type StartedAgent } from './service';

export interface JoinOptions {
  server: string;
  token: string;
  nodeName: string | null;
  interface: string | null;
  dataDir: string;
  configPath: string;
  /** External store only: this node's own etcd client certificate and key. */
  etcdCert: string | null;
  etcdKey: string | null;
  /** Makes this node a signing node (src/security/cluster-key.ts). */
  clusterKey: string | null;
  progress: (line: string) => void;
}

export interface JoinResult {
  config: Config;
  nodeIp: string;
  role: 'etcd member' | 'agent only' | 'external etcd';
  servedBy: string;
  signer: boolean;
  managementUrl: string;
  caFingerprint: string;
  started: StartedAgent;
}

/**
 * `vipd join`: finds the cluster CA through the token, checks this node against the cluster
 * (name, subnet, layer 2) before anything is written, then registers, writes the PKI and
 * config the server returns, and starts the agent.
 */
export async function joinCluster(options: JoinOptions): Promise<JoinResult> {
  const { progress } = options;
  const dataDir = resolve(options.dataDir);
  const configPath = resolve(options.configPath);
  const pkiDir = join(dataDir, 'pki');
  const clusterKey = options.clusterKey === null ? null : parseClusterKey(options.clusterKey, '--cluster-key');
  const netlink = Netlink.open();
  try {
    const client = await JoinClient.connect(options.server, options.token);
    progress(`${client.target.origin} presents the cluster CA the token names (SHA-256 ${certificateFingerprint(client.caPem)})`);
    const info = await client.clusterInfo();
    const vip = info.vip.address;
    if (!vip && !options.interface) throw new InputError('--interface', 'is required: the cluster has no VIP address yet to find the interface by');
    const interfaceName = options.interface ?? (await interfaceForVip(netlink, vip!));
    const shared = {
      cluster: info.cluster,
      vip: info.vip.mode === 'static' ? { mode: 'static', address: vip } : { mode: 'dhcp', ...(vip ? { address: vip } : {}), ...(info.vip.hwaddr ? { hwaddr: info.vip.hwaddr } : {}) },
    };
    const node = { ...(options.nodeName ? { name: options.nodeName } : {}), interface: interfaceName };
    const { config, local } = await checkNode({ ...shared, node, etcd: { endpoints: ['https://127.0.0.1:2379'] } }, netlink);
    const name = config.node.name;
    const taken = info.nodes.find((other) => other.name === name);
    if (taken) {
      throw new InputError(
        '--node-name',
        `"${name}" is already taken by the node at ${taken.ip} (MAC ${taken.mac}); choose another name, or remove that node first with \`vipd node remove ${name}\``,
      );
    }
    checkPathsFree(configPath, dataDir);
    if (info.store === 'external') checkReadable(options.etcdCert, options.etcdKey);
    if (info.manageAccess) checkEtcdUser(options.etcdCert, name);
    const ip = local.managementAddress.address;
    const mac = local.managementInterface.mac;
    const live = info.nodes.filter((other) => other.alive);
    progress(`checking layer 2 from ${interfaceName}: ARP probes for ${live.map((other) => `${other.name} (${other.ip})`).join(', ') || 'no live nodes'}`);
    await checkNodesReachable(interfaceName, mac, live);

    const pairs = { client: await generateKeyPair(), server: await generateKeyPair(), peer: await generateKeyPair(), api: await generateKeyPair() };
    const response = await client.join({
      name,
      interface: interfaceName,
      ip,
      prefixLength: local.managementAddress.prefixLength,
      mac,
      mtu: local.managementInterface.mtu,
      publicKeys: { client: pairs.client.publicKeyPem, server: pairs.server.publicKeyPem, peer: pairs.peer.publicKeyPem, api: pairs.api.publicKeyPem },
      ...(clusterKey ? { signerProof: signerProof(clusterKey, info.cluster, name) } : {}),
    });
    progress(`${response.servedBy} registered ${name} (${ip}) and checked it at layer 2 from its side`);

    const etcd = writePki(response, pairs, pkiDir, dataDir, options);
    const document = { ...response.config, node, etcd, security: writeSecurity(response, pairs.api, pkiDir, clusterKey) };
    const checked = await checkNode(document, netlink);
    writeConfigFile(configPath, document);
    progress(`wrote ${configPath}`);
    progress('starting the agent');
    const started = startAgent(configPath, dataDir);
    await waitForAgent(checked.config, started, { needHolder: false, timeoutMs: 120_000 });
    const store = response.store;
    return {
      config: checked.config,
      nodeIp: ip,
      role: store.kind === 'external' ? 'external etcd' : store.role === 'member' ? 'etcd member' : 'agent only',
      servedBy: response.servedBy,
      signer: response.signer === true,
      managementUrl: managementUrl(vip ?? checked.config.vip.address ?? ip, checked.config.api.port),
      caFingerprint: certificateFingerprint(client.caPem),
      started,
    };
  } finally {
    netlink.close();
  }
}

/** An external etcd takes this node's own client certificate: it must be there before the node registers. */
function checkReadable(...paths: Array<string | null>): void {
  for (const path of paths) {
    if (!path) continue;
    try {
      readFileSync(path);
    } catch (error) {
      throw new InputError('--etcd-cert', `cannot read ${path}: ${(error as Error).message}`);
    }
  }
}

/** vipd keeps the external etcd's users: the one the cluster makes for this node is named by the CN its certificate must carry. */
function checkEtcdUser(certPath: string | null, name: string): void {
  const user = nodeUser(name);
  if (!certPath) {
    throw new InputError('--etcd-cert', `is required: vipd manages this cluster's etcd users, and this node's user is the CN of its client certificate (CN ${user}, from the etcd's CA)`);
  }
  const commonName = certificateCommonName(readCa(certPath, '--etcd-cert'));
  if (commonName !== user) {
    throw new InputError('--etcd-cert', `its CN is "${commonName ?? ''}", but etcd takes this node's user from it and the cluster makes the user "${user}": use a certificate with CN ${user}`);
  }
}

/** A signing node keeps the cluster key; any other node the HTTPS certificate issued for it. Returns the config's security section. */
function writeSecurity(response: JoinResponse, api: KeyPair, pkiDir: string, clusterKey: Buffer | null): Record<string, unknown> {
  if (clusterKey && response.signer) {
    writePrivateFile(clusterKeyPath(pkiDir), `${formatClusterKey(clusterKey)}\n`);
    return { clusterKeyFile: clusterKeyPath(pkiDir) };
  }
  if (!response.certificates.api) return {};
  const paths = servingCertificatePaths(pkiDir);
  writePrivateFile(paths.key, api.privateKeyPem);
  writePrivateFile(paths.cert, response.certificates.api, 0o644);
  return { servingCertificate: paths };
}

/** Writes the certificates the cluster issued beside the keys made here; returns the config's etcd section. */
function writePki(
  response: JoinResponse,
  pairs: { client: KeyPair; server: KeyPair; peer: KeyPair },
  pkiDir: string,
  dataDir: string,
  options: JoinOptions,
): Record<string, unknown> {
  const paths = pkiPaths(pkiDir);
  const { store, certificates } = response;
  if (store.kind === 'external') {
    const caPath = join(pkiDir, 'etcd-ca.pem');
    if (store.ca) writePrivateFile(caPath, store.ca, 0o644);
    const tls = store.ca || options.etcdCert
      ? { tls: { ca: store.ca ? caPath : '/etc/ssl/certs/ca-certificates.crt', ...(options.etcdCert ? { cert: resolve(options.etcdCert), key: resolve(options.etcdKey!) } : {}) } }
      : {};
    return { endpoints: store.endpoints, ...tls };
  }
  writePrivateFile(paths.ca, certificates.ca, 0o644);
  writePrivateFile(paths.clientKey, pairs.client.privateKeyPem);
  writePrivateFile(paths.clientCert, certificates.client ?? '', 0o644);
  const tls = { ca: paths.ca, cert: paths.clientCert, key: paths.clientKey };
  if (store.role === 'agent') return { endpoints: store.endpoints, tls };
  writePrivateFile(paths.serverKey, pairs.server.privateKeyPem);
  writePrivateFile(paths.serverCert, certificates.server ?? '', 0o644);
  writePrivateFile(paths.peerKey, pairs.peer.privateKeyPem);
  writePrivateFile(paths.peerCert, certificates.peer ?? '', 0o644);
  return {
    endpoints: [store.clientURL],
    tls,
    embedded: {
      dataDir: join(dataDir, 'etcd'),
      pkiDir,
      clientURL: store.clientURL,
      peerURL: store.peerURL,
      initialCluster: store.initialCluster,
      initialClusterState: 'existing',
      clusterEndpoints: store.clusterEndpoints,
    },
  };
}
