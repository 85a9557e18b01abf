import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pino from 'pino';
import type { Config } from '../config/config';
import { readCa } from '../config/referenced-files';
import { InputError } from '../config/schema-check';
import { EtcdStore } from '../store/etcd-store';
import { ClusterKeys } from '../store/keys';
import { generateVipMac } from '../store/membership';
import { Netlink } from '../holding/netlink';
import { certificateCommonName, certificateFingerprint, ClusterCa, encodeCaRecord, type CaMaterial } from '../security/ca';
import { generateClusterKey, parseClusterKey } from '../security/cluster-key';
import { accessControlEnabled, disableAccessControl, enableAccessControl, isPermissionDenied, listUsers, nodeUser, ROOT_ROLE, ROOT_USER } from '../store/access';
import { EtcdKeyValue } from '../store/kv';
import { securityKeys } from '../store/keys';
import { TokenStore } from '../security/tokens';
import { ETCD_CLIENT_PORT, ETCD_PEER_PORT, urlFor } from './etcd-endpoints';
import { clusterSetupKeys } from '../store/keys';
import { type StoreInfo } from '../store/records';
import { EmbeddedEtcd } from './embedded-etcd';
import { checkNode, checkPathsFree, checkVipUnused, obtainDhcpLease, waitForAgent, writeConfigFile } from './node-setup';
import { ClusterIssuer, clusterKeyPath, generateKeyPair, pkiPaths, writePrivateFile } from './pki';
import { startAgent, type StartedAgent } from './service';

export interface ExternalEtcd {
  endpoints: string[];
  ca: string | null;
  cert: string | null;
  key: string | null;
  /** The operator lets vipd manage etcd's users and roles, through `cert` (docs/security.md). */
  manageAccess: boolean;
}

export interface InitOptions {
  cluster: string;
  nodeName: string | null;
  interface: string;
  vipMode: 'static' | 'dhcp';
  /** Static: the VIP. DHCP: the address to request (optional). */
  vip: string | null;
  vipHwaddr: string | null;
  fqdn: string | null;
  apiPort: number;
  dataDir: string;
  configPath: string;
  /** null: the embedded store. */
  etcd: ExternalEtcd | null;
  voters: number;
  tokenTtlMs: number | null;
  /** Progress lines for the person at the terminal. */
  progress: (line: string) => void;
}

export interface InitResult {
  config: Config;
  nodeIp: string;
  managementUrl: string;
  token: string;
  tokenExpires: string | null;
  /** For `vipd join --cluster-key`: makes the joining node a signing node. */
  clusterKey: string;
  caFingerprint: string;
  /** An external etcd whose users and roles vipd keeps. */
  etcdAccessManaged: boolean;
  started: StartedAgent;
  holder: string | null;
  dhcp: { hwaddr: string; leasedIp: string } | null;
}

/** https://VIP, https://[v6], with the port when it is not 443. */
export function managementUrl(address: string, port: number): string {
  const host = address.includes(':') ? `[${address}]` : address;
  return port === 443 ? `https://${host}` : `https://${host}:${port}`;
}

/** The config document init writes: the shared part (also stored as the join template) plus node, etcd and the cluster key. */
function documentFor(options: InitOptions, vip: string | null, hwaddr: string | null, etcd: Record<string, unknown>): Record<string, unknown> {
  return {
    ...sharedDocument(options, vip, hwaddr),
    node: { ...(options.nodeName ? { name: options.nodeName } : {}), interface: options.interface },
    etcd,
    security: { clusterKeyFile: clusterKeyPath(join(resolve(options.dataDir), 'pki')) },
  };
}

function sharedDocument(options: InitOptions, vip: string | null, hwaddr: string | null): Record<string, unknown> {
  return {
    cluster: options.cluster,
    vip: options.vipMode === 'static' ? { mode: 'static', address: vip } : { mode: 'dhcp', ...(vip ? { address: vip } : {}), hwaddr },
    api: { port: options.apiPort, ...(options.fqdn ? { fqdn: options.fqdn } : {}) },
  };
}

/** Writes this node's etcd key pairs and the certificates the cluster CA gives them. */
async function writeMemberPki(pkiDir: string, ca: CaMaterial, name: string, ip: string): Promise<void> {
  const issuer = await ClusterIssuer.fromMaterial(ca);
  const paths = pkiPaths(pkiDir);
  writePrivateFile(paths.ca, ca.certificate, 0o644);
  const pairs: Array<[string, string, Array<'server' | 'client'>, string[] | undefined]> = [
    [paths.serverCert, paths.serverKey, ['server', 'client'], [ip, name, '127.0.0.1', 'localhost']],
    [paths.peerCert, paths.peerKey, ['server', 'client'], [ip, name]],
    [paths.clientCert, paths.clientKey, ['client'], undefined],
  ];
  for (const [certPath, keyPath, uses, altNames] of pairs) {
    const pair = await generateKeyPair();
    writePrivateFile(keyPath, pair.privateKeyPem);
    const commonName = uses.length === 1 ? nodeUser(name) : name;
    writePrivateFile(certPath, await issuer.issue({ commonName, publicKeyPem: pair.publicKeyPem, uses, ...(altNames ? { altNames } : {}) }), 0o644);
  }
}

/**
 * `vipd init`: checks everything first (nothing is written if a check fails), then writes
 * the PKI and config, brings up the store with the cluster CA, settings and a join token in
 * it, and starts the agent.
 */
export async function initCluster(options: InitOptions): Promise<InitResult> {
  const { progress } = options;
  const dataDir = resolve(options.dataDir);
  const configPath = resolve(options.configPath);
  const pkiDir = join(dataDir, 'pki');
  const netlink = Netlink.open();
  let written = false;
  try {
    const hwaddr = options.vipMode === 'dhcp' ? (options.vipHwaddr?.toLowerCase() ?? generateVipMac()) : null;
    const placeholder = { endpoints: ['https://127.0.0.1:2379'] };
    let { config, local } = await checkNode(documentFor(options, options.vip, hwaddr, placeholder), netlink);
    checkPathsFree(configPath, dataDir);
    const ownMac = local.managementInterface.mac;
    let vip = options.vip;
    let dhcp: InitResult['dhcp'] = null;
    if (options.vipMode === 'static') {
      progress(`checking that ${vip} is free: ARP probes on ${options.interface}`);
      await checkVipUnused(options.interface, ownMac, vip!);
    } else {
      progress(`asking the DHCP server for an address for the VIP's MAC ${hwaddr} on ${options.interface}`);
      const lease = await obtainDhcpLease(netlink, options.interface, hwaddr!, vip);
      vip = lease.ip;
      dhcp = { hwaddr: hwaddr!, leasedIp: lease.ip };
      ({ config, local } = await checkNode(documentFor(options, vip, hwaddr, placeholder), netlink));
    }
    const nodeIp = local.managementAddress.address;

    const external = options.etcd;
    let etcdSection: Record<string, unknown>;
    if (external) {
      etcdSection = {
        endpoints: external.endpoints,
        ...(external.ca ? { tls: { ca: resolve(external.ca), ...(external.cert ? { cert: resolve(external.cert) } : {}), ...(external.key ? { key: resolve(external.key) } : {}) } } : {}),
      };
    } else {
      const paths = pkiPaths(pkiDir);
      const clientURL = urlFor(nodeIp, ETCD_CLIENT_PORT);
      const peerURL = urlFor(nodeIp, ETCD_PEER_PORT);
      etcdSection = {
        endpoints: [clientURL],
        tls: { ca: paths.ca, cert: paths.clientCert, key: paths.clientKey },
        embedded: {
          dataDir: join(dataDir, 'etcd'),
          pkiDir,
          clientURL,
          peerURL,
          initialCluster: `${config.node.name}=${peerURL}`,
          initialClusterState: 'new',
        },
      };
    }
    const document = documentFor(options, vip, hwaddr, etcdSection);
    ({ config } = await checkNode(document, netlink));
    if (external?.manageAccess) await checkAccessManageable(config, external);
    if (external) await checkExternalStoreIsNew(config);

    // Every check passed: from here on init writes, and undoes what it wrote if it fails.
    written = true;
    const ca = await ClusterCa.generate({ cluster: config.cluster });
    const clusterKey = generateClusterKey();
    writePrivateFile(clusterKeyPath(pkiDir), `${clusterKey}\n`);
    if (!external) await writeMemberPki(pkiDir, ca, config.node.name, nodeIp);
    writeConfigFile(configPath, document);
    progress(`wrote ${configPath}`);

    const storeInfo: StoreInfo = external
      ? { kind: 'external', endpoints: external.endpoints, ca: external.ca ? readFileSync(external.ca, 'utf8') : null, ...(external.manageAccess ? { manageAccess: true } : {}) }
      : { kind: 'embedded', maxVoters: options.voters };
    const etcd = external ? null : await startEmbedded(config, progress);
    if (external?.manageAccess) await turnOnExternalAccess(config);
    let token: Awaited<ReturnType<TokenStore['create']>>;
    try {
      token = await seedStore(config, encodeCaRecord(ca, { clusterKey: parseClusterKey(clusterKey, 'cluster key'), cluster: config.cluster }), sharedDocument(options, vip, hwaddr), storeInfo, options.tokenTtlMs);
    } finally {
      await etcd?.stop();
    }

    progress('starting the agent');
    // The cluster exists from here on: a slow agent is reported, not undone.
    written = false;
    const started = startAgent(configPath, dataDir);
    const holder = await waitForAgent(config, started, { needHolder: true, timeoutMs: 90_000 });
    return {
      config,
      nodeIp,
      managementUrl: managementUrl(vip!, config.api.port),
      token: token.token,
      tokenExpires: token.record.expires,
      clusterKey,
      caFingerprint: certificateFingerprint(ca.certificate),
      etcdAccessManaged: external?.manageAccess === true,
      started,
      holder,
      dhcp,
    };
  } catch (error) {
    if (written) undoInit(configPath, dataDir);
    throw error;
  } finally {
    netlink.close();
  }
}

function undoInit(configPath: string, dataDir: string): void {
  rmSync(configPath, { force: true });
  for (const entry of ['pki', 'etcd', 'etcd.log']) rmSync(join(dataDir, entry), { recursive: true, force: true });
}

async function startEmbedded(config: Config, progress: (line: string) => void): Promise<EmbeddedEtcd> {
  progress(`starting the embedded etcd member (${config.etcd.embedded!.clientURL})`);
  const logger = pino({ level: 'warn' }, pino.destination(2));
  return await EmbeddedEtcd.start(config, logger, { readyTimeoutMs: 60_000 });
}

function storeFor(config: Config): EtcdStore {
  return new EtcdStore({ endpoints: config.etcd.endpoints, tls: config.etcd.tls, callTimeoutMs: 5000 });
}

async function checkExternalStoreIsNew(config: Config): Promise<void> {
  const store = storeFor(config);
  const keys = new ClusterKeys(config.cluster);
  try {
    const [settings, ca] = await Promise.all([store.get(keys.settings), store.get(securityKeys(keys).ca)]);
    if (settings || ca) {
      throw new InputError('--cluster', `a cluster "${config.cluster}" already exists in etcd at ${config.etcd.endpoints.join(', ')}: join it with \`vipd join\`, or pick another --cluster`);
    }
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError('--etcd', `cannot reach etcd at ${config.etcd.endpoints.join(', ')}: ${(error as Error).message}`);
  } finally {
    store.close();
  }
}

/**
 * --etcd-manage-access: this node's certificate must still work once access control is on,
 * so its CN is this node's user (made here) or a user that has etcd's root role already;
 * and where access control is on already, it must be allowed to manage users.
 */
async function checkAccessManageable(config: Config, external: ExternalEtcd): Promise<void> {
  const commonName = certificateCommonName(readCa(external.cert!, '--etcd-cert')) ?? '';
  const own = nodeUser(config.node.name);
  if (await acceptsClientsWithoutCertificate(config)) {
    throw new InputError('--etcd-manage-access', `etcd at ${config.etcd.endpoints.join(', ')} accepts a client without a certificate: it takes users from certificates only when run with --trusted-ca-file and --client-cert-auth, so vipd would lock every node out`);
  }
  const store = storeFor(config);
  try {
    const users = await listUsers(store).catch((error: unknown) => {
      if (!isPermissionDenied(error)) throw error;
      throw new InputError('--etcd-manage-access', `etcd's access control is on and refuses to list its users to the certificate --etcd-cert (CN "${commonName}"): give a certificate whose CN is an etcd user with the root role`);
    });
    if (commonName !== own && commonName !== ROOT_USER && !users.get(commonName)?.includes(ROOT_ROLE)) {
      throw new InputError('--etcd-cert', `its CN is "${commonName}", which is neither this node's etcd user "${own}", "${ROOT_USER}", nor an etcd user with the root role: once vipd turns etcd's access control on, etcd would refuse this node`);
    }
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError('--etcd', `cannot reach etcd at ${config.etcd.endpoints.join(', ')}: ${(error as Error).message}`);
  } finally {
    store.close();
  }
}

/** etcd given --trusted-ca-file ends a TLS handshake without a client certificate; any answer from etcd means it took one. */
async function acceptsClientsWithoutCertificate(config: Config): Promise<boolean> {
  const anonymous = new EtcdStore({ endpoints: config.etcd.endpoints, tls: { ca: config.etcd.tls!.ca }, callTimeoutMs: 3000 });
  try {
    await anonymous.get(new ClusterKeys(config.cluster).settings);
    return true;
  } catch (error) {
    // Its access control (already on) refusing a nameless client is an answer too.
    return isPermissionDenied(error);
  } finally {
    anonymous.close();
  }
}

/**
 * --etcd-manage-access: turns the external etcd's access control on before anything is
 * stored, then checks that this node's certificate still names its user. An etcd run with
 * --trusted-ca-file but without --client-cert-auth checks certificates yet takes no user from
 * them: every node, and every other client, would be refused. Where vipd made `root`, it did
 * so with a random password, used only to turn access control off again in that case.
 */
async function turnOnExternalAccess(config: Config): Promise<void> {
  const keys = new ClusterKeys(config.cluster);
  const store = storeFor(config);
  try {
    const wasOn = await accessControlEnabled(store);
    const rootPassword = wasOn || (await listUsers(store)).has(ROOT_USER) ? undefined : randomBytes(32).toString('base64url');
    await enableAccessControl(store, keys, config.node.name, rootPassword);
    if (wasOn) return;
    const refused = await store.get(keys.settings).then(() => null, (error: unknown) => {
      if (isPermissionDenied(error)) return error as Error;
      throw error;
    });
    if (!refused) return;
    const undoError = rootPassword ? await undoAccessControl(config, store, keys, rootPassword) : 'etcd\'s root user was not made by vipd';
    throw new InputError(
      '--etcd-manage-access',
      `etcd at ${config.etcd.endpoints.join(', ')} takes no user from a client certificate (${refused.message}): run it with --client-cert-auth. ` +
        (undoError === null
          ? 'vipd turned its access control off again.'
          : `Its access control is on now (${undoError}): turn it off as its root user (\`etcdctl --user root auth disable\`).`),
    );
  } finally {
    store.close();
  }
}

/** Null when undone, else why not. */
async function undoAccessControl(config: Config, store: EtcdStore, keys: ClusterKeys, rootPassword: string): Promise<string | null> {
  const root = new EtcdStore({ endpoints: config.etcd.endpoints, tls: config.etcd.tls, callTimeoutMs: 5000, password: { user: ROOT_USER, password: rootPassword } });
  try {
    await disableAccessControl(root, store, keys, config.node.name);
    return null;
  } catch (error) {
    return `turning it off failed: ${(error as Error).message}`;
  } finally {
    root.close();
  }
}

/** The cluster CA goes in before any agent runs, so ClusterCa.loadOrCreate finds this one. */
async function seedStore(
  config: Config,
  caRecord: string,
  template: Record<string, unknown>,
  storeInfo: StoreInfo,
  tokenTtlMs: number | null,
): Promise<Awaited<ReturnType<TokenStore['create']>>> {
  const store = storeFor(config);
  const keys = new ClusterKeys(config.cluster);
  const security = securityKeys(keys);
  const setup = clusterSetupKeys(keys);
  try {
    const stored = await store.putIfAbsent(security.ca, caRecord);
    if (stored.value !== caRecord) {
      throw new InputError('--cluster', `cluster "${config.cluster}" already has a CA in this etcd`);
    }
    await store.put(setup.template, JSON.stringify(template));
    await store.put(setup.store, JSON.stringify(storeInfo));
    const token = await new TokenStore(new EtcdKeyValue(store), security).create({
      role: 'join',
      description: `made by vipd init on ${config.node.name}`,
      ttlMs: tokenTtlMs,
      createdOn: config.node.name,
    });
    // Last: from here on every client needs a user (an external etcd's, when vipd may manage them, are on already: turnOnExternalAccess).
    if (storeInfo.kind === 'embedded') await enableAccessControl(store, keys, config.node.name);
    return token;
  } finally {
    store.close();
  }
}
