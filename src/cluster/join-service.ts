import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { Config } from '../config/config';
import { InputError } from '../config/schema-check';
import { EtcdStore, type EtcdMember } from '../store/etcd-store';
import { ClusterKeys } from '../store/keys';
import { Membership } from '../store/membership';
import { type ClusterSettings, type NodeRecord } from '../store/records';
import { sameSubnet } from '../holding/codecs/subnet';
import { parseMac } from '../holding/codecs/mac';
import { probeForOtherHolders } from '../holding/conflict-probe';
import { Netlink } from '../holding/netlink';
import { checkLocalNetwork } from '../holding/preflight';
import { ClusterCa } from '../security/ca';
import { EtcdKeyValue } from '../store/kv';
import { securityKeys } from '../store/keys';
import { TokenStore, type JoinTokenCheck } from '../security/tokens';
import { DEFAULT_VOTERS, ETCD_CLIENT_PORT, ETCD_PEER_PORT, urlFor } from './etcd-endpoints';
import { clusterSetupKeys } from '../store/keys';
import { type StoreInfo } from '../store/records';
import { JoinRefused, type JoinClusterInfo, type JoinRequest, type JoinResponse, type JoinStore } from './join-protocol';
import { ClusterIssuer, parseStoredCa } from './pki';
import { claimNameAndIp } from './join-claims';
import { SERVER_CIPHERS } from '../security/tls-policy';

/** What the API's join routes need; the agent's process provides it (src/cluster/join-service.ts). */
export interface JoinHandler {
  /** The TLS context for the join server name: a certificate from the cluster CA. */
  sniContext(servername: string): Promise<SecureContext | null>;
  checkToken(bearer: string): Promise<JoinTokenCheck>;
  clusterInfo(): Promise<JoinClusterInfo>;
  /** `tokenId`: the join token the route checked; one of its uses is spent once the node's name and IP are claimed. */
  join(request: JoinRequest, tokenId: string): Promise<JoinResponse>;
}

const SNI_CONTEXT_MS = 12 * 60 * 60 * 1000;
const L2_PROBE_MS = 600;
/** etcd's health interval is 5 s; a little more covers a voter that is still catching up. */
const UNHEALTHY_CLUSTER_WAIT_MS = 15_000;

/**
 * The server side of `vipd join`, run by every agent: checks the joining node, registers it,
 * certifies its keys with the cluster CA and, for the embedded store, adds it to etcd as a
 * learner (it promotes itself once caught up, so a joiner that never starts cannot cost quorum).
 */
export class JoinService implements JoinHandler {
  private store: EtcdStore | null = null;
  private readonly keys: ClusterKeys;
  private sni: { context: SecureContext; until: number } | null = null;
  /** One join at a time on this node: the voter count must not race. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
  ) {
    this.keys = new ClusterKeys(config.cluster);
  }

  private etcd(): EtcdStore {
    this.store ??= new EtcdStore({ endpoints: this.config.etcd.endpoints, tls: this.config.etcd.tls, callTimeoutMs: 5000 });
    return this.store;
  }

  private tokens(): TokenStore {
    return new TokenStore(new EtcdKeyValue(this.etcd()), securityKeys(this.keys));
  }

  close(): void {
    this.store?.close();
    this.store = null;
  }

  async checkToken(bearer: string): Promise<JoinTokenCheck> {
    return await this.tokens().checkJoin(bearer);
  }

  private async caMaterial() {
    const stored = await this.etcd().get(securityKeys(this.keys).ca);
    if (!stored) throw new JoinRefused('unavailable', 'this cluster has no CA yet: its first agent is still starting');
    return parseStoredCa(stored.value);
  }

  /** This node's own facts: its management IP and MAC, read fresh (the link may have changed). */
  private async local(): Promise<{ ip: string; mac: string }> {
    const netlink = Netlink.open();
    try {
      const facts = await checkLocalNetwork(this.config, netlink);
      return { ip: facts.managementAddress.address, mac: facts.managementInterface.mac };
    } finally {
      netlink.close();
    }
  }

  async sniContext(): Promise<SecureContext | null> {
    if (this.sni && Date.now() < this.sni.until) return this.sni.context;
    const material = await this.caMaterial();
    const ca = await ClusterCa.fromPem(material.certificate, material.privateKey);
    const { ip } = await this.local();
    const issued = await ca.issueServingCertificate({
      nodeName: this.config.node.name,
      nodeIp: ip,
      vip: this.config.vip.address ?? ip,
      fqdn: this.config.api.fqdn,
      validityDays: 2,
    });
    this.sni = { context: createSecureContext({ key: issued.privateKey, cert: issued.chain, ciphers: SERVER_CIPHERS }), until: Date.now() + SNI_CONTEXT_MS };
    return this.sni.context;
  }

  private async settings(): Promise<ClusterSettings> {
    const stored = await this.etcd().get(this.keys.settings);
    if (!stored) throw new JoinRefused('unavailable', 'this cluster has no settings yet: its first agent is still starting');
    return JSON.parse(stored.value) as ClusterSettings;
  }

  private async storeInfo(): Promise<StoreInfo> {
    const stored = await this.etcd().get(clusterSetupKeys(this.keys).store);
    if (stored) return JSON.parse(stored.value) as StoreInfo;
    // A cluster set up by hand, before `vipd init`: its nodes' config names the etcd.
    return { kind: 'external', endpoints: this.config.etcd.endpoints, ca: null };
  }

  /** Static: the VIP; DHCP: the requested IP, or the leased one. */
  private async vipAddress(settings: ClusterSettings): Promise<string | null> {
    if (settings.address) return settings.address;
    const dhcp = await this.etcd().get(this.keys.dhcp);
    return dhcp ? ((JSON.parse(dhcp.value) as { leasedIP?: string | null }).leasedIP ?? null) : null;
  }

  async clusterInfo(): Promise<JoinClusterInfo> {
    const membership = new Membership(this.etcd(), this.keys);
    const [settings, nodes, live, info] = await Promise.all([
      this.settings(),
      membership.listNodes(),
      membership.liveNodeNames(),
      this.storeInfo(),
    ]);
    return {
      cluster: this.config.cluster,
      vip: { mode: settings.mode, address: await this.vipAddress(settings), hwaddr: settings.hwaddr },
      nodes: nodes.map((node) => ({ name: node.name, ip: node.ip, mac: node.mac, alive: live.has(node.name) })),
      store: info.kind,
    };
  }

  join(request: JoinRequest, tokenId: string): Promise<JoinResponse> {
    const result = this.queue.then(() => this.joinOne(request, tokenId));
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async joinOne(request: JoinRequest, tokenId: string): Promise<JoinResponse> {
    const store = this.etcd();
    const membership = new Membership(store, this.keys);
    const setup = clusterSetupKeys(this.keys);
    const [settings, nodes, info, template, material] = await Promise.all([
      this.settings(),
      membership.listNodes(),
      this.storeInfo(),
      store.get(setup.template),
      this.caMaterial(),
    ]);
    const vip = await this.vipAddress(settings);
    this.checkAgainstCluster(request, nodes, settings, vip);
    await this.checkLayer2(request);
    // The checks above read, then wrote nothing: another node may be joining the same name or IP now.
    const release = await claimNameAndIp(store, this.keys, request.name, request.ip);
    try {
      // Spent last, so a join refused by a check above costs the token nothing.
      const spent = await this.tokens().spendJoin(tokenId);
      if (!spent.ok) {
        throw new JoinRefused('unauthorized', spent.reason === 'used-up'
          ? 'the join token has been used up: create a new one with `vipd token create --role join`'
          : spent.reason === 'expired'
            ? 'the join token has expired: create a new one with `vipd token create --role join`'
            : 'the join token is not valid for this cluster (unknown, revoked or wrong secret)');
      }
      return await this.register(request, store, membership, info, template, material);
    } catch (error) {
      await release().catch(() => undefined);
      throw error;
    }
  }

  private async register(
    request: JoinRequest,
    store: EtcdStore,
    membership: Membership,
    info: StoreInfo,
    template: Awaited<ReturnType<EtcdStore['get']>>,
    material: Awaited<ReturnType<JoinService['caMaterial']>>,
  ): Promise<JoinResponse> {
    const issuer = await ClusterIssuer.fromStored(material);
    const record: NodeRecord = {
      name: request.name,
      interface: request.interface,
      ip: request.ip,
      prefixLength: request.prefixLength,
      mac: request.mac.toLowerCase(),
      mtu: request.mtu,
      registeredAt: new Date().toISOString(),
    };
    const certificates: JoinResponse['certificates'] = { ca: material.certificate, client: null, server: null, peer: null };
    let joinStore: JoinStore;
    if (info.kind === 'external') {
      joinStore = { kind: 'external', endpoints: info.endpoints, ca: info.ca };
      await membership.register(record);
    } else {
      certificates.client = await issuer.issue({ commonName: `vipd-node-${request.name}`, publicKeyPem: request.publicKeys.client, uses: ['client'] });
      const members = await store.listMembers();
      const maxVoters = info.maxVoters || DEFAULT_VOTERS;
      if (members.length < maxVoters && !members.some((member) => member.isLearner)) {
        const altNames = [request.ip, request.name];
        certificates.server = await issuer.issue({
          commonName: request.name,
          publicKeyPem: request.publicKeys.server,
          uses: ['server', 'client'],
          altNames: [...altNames, '127.0.0.1', 'localhost'],
        });
        certificates.peer = await issuer.issue({ commonName: request.name, publicKeyPem: request.publicKeys.peer, uses: ['server', 'client'], altNames });
        joinStore = await this.addMember(record, members, membership);
      } else {
        await membership.register(record);
        joinStore = { kind: 'embedded', role: 'agent', endpoints: await this.healthyClientUrls(members) };
      }
    }
    this.logger.info({ node: request.name, ip: request.ip, store: joinStore.kind, role: 'role' in joinStore ? joinStore.role : 'agent' }, 'a node joined');
    return {
      cluster: this.config.cluster,
      config: template ? (JSON.parse(template.value) as Record<string, unknown>) : this.fallbackTemplate(),
      store: joinStore,
      certificates,
      servedBy: this.config.node.name,
    };
  }

  /** Registers first: once the learner is added, a failure is undone by removing both. */
  private async addMember(record: NodeRecord, members: EtcdMember[], membership: Membership): Promise<JoinStore> {
    const store = this.etcd();
    const peerURL = urlFor(record.ip, ETCD_PEER_PORT);
    const clientURL = urlFor(record.ip, ETCD_CLIENT_PORT);
    const stale = members.find((member) => member.peerURLs.includes(peerURL));
    if (stale) {
      throw new JoinRefused('conflict', `node.ip: an etcd member already uses ${peerURL}; remove it first with \`vipd node remove ${stale.name || record.name}\``);
    }
    await membership.register(record);
    let added: Awaited<ReturnType<EtcdStore['addLearner']>>;
    try {
      added = await addLearnerOnceHealthy(store, peerURL);
    } catch (error) {
      await store.delete(this.keys.node(record.name)).catch(() => undefined);
      throw new JoinRefused('unavailable', `could not add an etcd member for ${record.name}: ${(error as Error).message}`);
    }
    const initialCluster = added.members
      .map((member) => `${member.id === added.member.id ? record.name : member.name}=${member.peerURLs[0] ?? ''}`)
      .join(',');
    const clusterEndpoints = added.members.filter((member) => !member.isLearner).flatMap((member) => member.clientURLs);
    return { kind: 'embedded', role: 'member', clientURL, peerURL, initialCluster, clusterEndpoints };
  }

  /** Voters that answer now: an agent-only node's client picks any endpoint, and a dead one would fail its calls. */
  private async healthyClientUrls(members: EtcdMember[]): Promise<string[]> {
    const urls = members.filter((member) => !member.isLearner).flatMap((member) => member.clientURLs);
    const answers = await Promise.all(
      urls.map(async (url) => {
        const probe = new EtcdStore({ endpoints: [url], tls: this.config.etcd.tls, callTimeoutMs: 1500 });
        try {
          await probe.get(`/vipd-join-health`);
          return url;
        } catch {
          return null;
        } finally {
          probe.close();
        }
      }),
    );
    const healthy = answers.filter((url): url is string => url !== null);
    return healthy.length > 0 ? healthy : urls;
  }

  private fallbackTemplate(): Record<string, unknown> {
    const { vip, api } = this.config;
    return {
      cluster: this.config.cluster,
      vip: vip.mode === 'static' ? { mode: 'static', address: vip.address } : { mode: 'dhcp', ...(vip.address ? { address: vip.address } : {}), ...(vip.hwaddr ? { hwaddr: vip.hwaddr } : {}) },
      api: { port: api.port, ...(api.fqdn ? { fqdn: api.fqdn } : {}) },
    };
  }

  /** The checks every agent makes at start, made here before anything is written. */
  private checkAgainstCluster(request: JoinRequest, nodes: NodeRecord[], settings: ClusterSettings, vip: string | null): void {
    const taken = nodes.find((node) => node.name === request.name);
    if (taken) {
      throw new JoinRefused('conflict',
        `node.name: "${request.name}" is already taken by the node at ${taken.ip} (MAC ${taken.mac}); ` +
          `choose another name with --node-name, or remove that node first with \`vipd node remove ${request.name}\``,
      );
    }
    const sameIp = nodes.find((node) => node.ip === request.ip);
    if (sameIp) throw new JoinRefused('conflict', `node.interface: the management IP ${request.ip} is already registered by node "${sameIp.name}"`);
    if (vip && request.ip === vip) throw new InputError('node.interface', `${request.ip} is the VIP; the VIP must differ from every node IP`);
    if (vip && !sameSubnet(request.ip, vip, request.prefixLength)) {
      throw new InputError(
        'node.interface',
        `the management IP ${request.ip}/${request.prefixLength} is not in the subnet of the VIP ${vip}: ` +
          'the VIP and every management interface must share one subnet and one layer-2 segment',
      );
    }
    if (settings.hwaddr && settings.hwaddr === request.mac.toLowerCase()) {
      throw new InputError('node.interface', `${request.mac} is the VIP's own MAC; the management interface needs another`);
    }
  }

  /** This node asks the segment for the joiner's IP: only its MAC may answer. */
  private async checkLayer2(request: JoinRequest): Promise<void> {
    const netlink = Netlink.open();
    let ownMac: string;
    try {
      const link = await netlink.interfaceByName(this.config.node.interface);
      if (!link) throw new JoinRefused('unavailable', `this server's management interface ${this.config.node.interface} is gone`);
      ownMac = link.mac;
    } finally {
      netlink.close();
    }
    const answering = await probeForOtherHolders({
      interfaceName: this.config.node.interface,
      ownMac: parseMac(ownMac),
      address: request.ip,
      windowMs: L2_PROBE_MS,
    });
    if (!answering.includes(request.mac.toLowerCase())) {
      const heard = answering.length > 0 ? `only ${answering.join(', ')} answered` : 'nobody answered';
      throw new InputError(
        'node.interface',
        `${this.config.node.name} sent an ARP probe for ${request.ip} on its ${this.config.node.interface} and ${heard}, not ${request.mac}: ` +
          'the joining node is not on the VIP\'s layer-2 segment',
      );
    }
  }
}

/**
 * etcd refuses a member change ("unhealthy cluster") until every voter has been connected
 * for its health interval (5 s), e.g. right after the previous node joined: wait that out.
 */
async function addLearnerOnceHealthy(store: EtcdStore, peerURL: string): Promise<Awaited<ReturnType<EtcdStore['addLearner']>>> {
  const deadline = Date.now() + UNHEALTHY_CLUSTER_WAIT_MS;
  for (;;) {
    try {
      return await store.addLearner(peerURL);
    } catch (error) {
      if (!/unhealthy cluster/i.test((error as Error).message) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}
