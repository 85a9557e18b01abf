import { readFileSync } from 'node:fs';
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
import { caCertificateOf, CaLockedError, ClusterCa, decodeCaRecord, isSealedCaRecord, type CaMaterial, type CaSeal } from '../security/ca';
import { checkSignerProof } from '../security/cluster-key';
import { grantNode, nodeUser, revokeNode } from '../store/access';
import { EtcdKeyValue } from '../store/kv';
import { securityKeys } from '../store/keys';
import { TokenStore, type JoinTokenCheck } from '../security/tokens';
import { DEFAULT_VOTERS, ETCD_CLIENT_PORT, ETCD_PEER_PORT, urlFor } from './etcd-endpoints';
import { clusterSetupKeys } from '../store/keys';
import { type StoreInfo } from '../store/records';
import { JoinRefused, JoinResponseSchema, type JoinClusterInfo, type JoinRequest, type JoinResponse, type JoinStore } from './join-protocol';
import { JoinClient } from './join-client';
import { ClusterIssuer } from './pki';
import { claimNameAndIp } from './join-claims';
import { SERVER_CIPHERS } from '../security/tls-policy';

/** What the API's join routes need; the agent's process provides it (src/cluster/join-service.ts). */
export interface JoinHandler {
  /** The TLS context for the join server name: a certificate from the cluster CA. */
  sniContext(servername: string): Promise<SecureContext | null>;
  checkToken(bearer: string): Promise<JoinTokenCheck>;
  clusterInfo(): Promise<JoinClusterInfo>;
  /**
   * `token`: the join token the route checked (its id, and the bearer text a node that cannot
   * sign passes on); one of its uses is spent once the node's name and IP are claimed.
   */
  join(request: JoinRequest, token: { id: string; bearer: string }): Promise<JoinResponse>;
}

const SNI_CONTEXT_MS = 12 * 60 * 60 * 1000;
const L2_PROBE_MS = 600;
/** etcd's health interval is 5 s; a little more covers a voter that is still catching up. */
const UNHEALTHY_CLUSTER_WAIT_MS = 15_000;
/** A learner catches up in seconds; a joiner that never starts is left a learner (it costs no quorum). */
const PROMOTE_FOR_MS = 10 * 60 * 1000;

/**
 * The server side of `vipd join`, run by every agent. A signing node (it has the cluster
 * key) checks the joining node, registers it, certifies its keys with the cluster CA, gives
 * it an etcd user and, for the embedded store, adds it to etcd as a learner and promotes it
 * once it has caught up (a joiner that never starts costs no quorum). Any other node passes
 * the join on to a running signing node.
 */
export class JoinService implements JoinHandler {
  private store: EtcdStore | null = null;
  private readonly keys: ClusterKeys;
  private sni: { context: SecureContext; until: number } | null = null;
  /** One join at a time on this node: the voter count must not race. */
  private queue: Promise<unknown> = Promise.resolve();

  private closed = false;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    /** Null on a node that does not sign. */
    private readonly clusterKey: Buffer | null,
  ) {
    this.keys = new ClusterKeys(config.cluster);
  }

  private get seal(): CaSeal | null {
    return this.clusterKey ? { clusterKey: this.clusterKey, cluster: this.config.cluster } : null;
  }

  private etcd(): EtcdStore {
    this.store ??= new EtcdStore({ endpoints: this.config.etcd.endpoints, tls: this.config.etcd.tls, callTimeoutMs: 5000 });
    return this.store;
  }

  private tokens(): TokenStore {
    return new TokenStore(new EtcdKeyValue(this.etcd()), securityKeys(this.keys));
  }

  close(): void {
    this.closed = true;
    this.store?.close();
    this.store = null;
  }

  async checkToken(bearer: string): Promise<JoinTokenCheck> {
    return await this.tokens().checkJoin(bearer);
  }

  private async caRecord(): Promise<string> {
    const stored = await this.etcd().get(securityKeys(this.keys).ca);
    if (!stored) throw new JoinRefused('unavailable', 'this cluster has no CA yet: its first agent is still starting');
    return stored.value;
  }

  private async caMaterial(): Promise<CaMaterial> {
    try {
      return decodeCaRecord(await this.caRecord(), securityKeys(this.keys).ca, this.seal);
    } catch (error) {
      if (error instanceof CaLockedError) throw new JoinRefused('unavailable', error.message);
      throw error;
    }
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
    const issuedAtJoin = this.config.security.servingCertificate;
    if (!this.clusterKey && issuedAtJoin) {
      // A node that cannot sign shows the certificate the cluster CA gave it at join.
      const context = createSecureContext({ key: readFileSync(issuedAtJoin.key), cert: readFileSync(issuedAtJoin.cert), ciphers: SERVER_CIPHERS });
      this.sni = { context, until: Date.now() + SNI_CONTEXT_MS };
      return context;
    }
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
      ...(info.kind === 'external' && info.manageAccess ? { manageAccess: true } : {}),
    };
  }

  async join(request: JoinRequest, token: { id: string; bearer: string }): Promise<JoinResponse> {
    // A cluster set up by hand keeps its CA key unsealed (version 1): every node signs there.
    if (!this.clusterKey) {
      const caRecord = await this.caRecord();
      if (isSealedCaRecord(caRecord, securityKeys(this.keys).ca)) return await this.passOn(request, token.bearer, caRecord);
    }
    const result = this.queue.then(() => this.joinOne(request, token.id));
    this.queue = result.catch(() => undefined);
    return await result;
  }

  /** This node cannot sign: a running signing node serves the join, and its answer goes back as it is. */
  private async passOn(request: JoinRequest, bearer: string, caRecord: string): Promise<JoinResponse> {
    const membership = new Membership(this.etcd(), this.keys);
    const [nodes, live] = await Promise.all([membership.listNodes(), membership.liveNodeNames()]);
    const signers = nodes.filter((node) => node.signer === true && live.has(node.name) && node.name !== this.config.node.name);
    if (signers.length === 0) {
      throw new JoinRefused('unavailable', 'no signing node is running: a join is served by a node with the cluster key (the `vipd init` node, or one joined with --cluster-key)');
    }
    const caPem = caCertificateOf(caRecord, securityKeys(this.keys).ca);
    let lastError: Error | null = null;
    for (const signer of signers) {
      const origin = urlFor(signer.ip, this.config.api.port);
      let answer: { status: number; body: unknown };
      try {
        answer = await JoinClient.toKnownNode(origin, caPem, bearer).forwardJoin(request);
      } catch (error) {
        lastError = error as Error;
        continue;
      }
      this.logger.info({ node: request.name, signer: signer.name, status: answer.status }, 'passed a join on to a signing node');
      if (answer.status === 200) return JoinResponseSchema.check(answer.body, `${signer.name}'s answer`);
      const message = (answer.body as { message?: unknown } | null)?.message;
      const said = typeof message === 'string' ? message : `HTTP ${answer.status} from ${signer.name}`;
      const kind = answer.status === 400 ? 'invalid' : answer.status === 401 ? 'unauthorized' : answer.status === 409 ? 'conflict' : 'unavailable';
      throw new JoinRefused(kind, said);
    }
    throw new JoinRefused('unavailable', `no signing node answered (${signers.map((node) => node.name).join(', ')}): ${lastError?.message ?? ''}`);
  }

  private async joinOne(request: JoinRequest, tokenId: string): Promise<JoinResponse> {
    if (request.signerProof !== undefined && !checkSignerProof(this.clusterKey!, this.config.cluster, request.name, request.signerProof)) {
      throw new JoinRefused('unauthorized', `--cluster-key: this is not the cluster key of cluster "${this.config.cluster}"`);
    }
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
    material: CaMaterial,
  ): Promise<JoinResponse> {
    const issuer = await ClusterIssuer.fromMaterial(material);
    const signer = request.signerProof !== undefined;
    const record: NodeRecord = {
      name: request.name,
      interface: request.interface,
      ip: request.ip,
      prefixLength: request.prefixLength,
      mac: request.mac.toLowerCase(),
      mtu: request.mtu,
      registeredAt: new Date().toISOString(),
      ...(signer ? { signer: true } : {}),
    };
    const certificates: JoinResponse['certificates'] = { ca: material.certificate, client: null, server: null, peer: null, api: null };
    if (!signer && request.publicKeys.api) {
      const vip = await this.vipAddress(await this.settings());
      const altNames = [...new Set([vip, request.ip, request.name, this.config.api.fqdn].filter((name): name is string => Boolean(name)))];
      const leaf = await issuer.issue({ commonName: request.name, publicKeyPem: request.publicKeys.api, uses: ['server'], altNames });
      certificates.api = leaf + material.certificate.trim() + '\n';
    }
    let joinStore: JoinStore;
    if (info.kind === 'external') {
      joinStore = { kind: 'external', endpoints: info.endpoints, ca: info.ca };
      if (!info.manageAccess) {
        await membership.register(record);
      } else {
        // As in the embedded store: its user first, so its own certificate works from its first call.
        await grantNode(store, this.keys, request.name, signer);
        await membership.register(record).catch(async (error: unknown) => {
          await revokeNode(store, this.keys, request.name).catch(() => undefined);
          throw error;
        });
      }
    } else {
      certificates.client = await issuer.issue({ commonName: nodeUser(request.name), publicKeyPem: request.publicKeys.client, uses: ['client'] });
      // Its etcd user before anything else: the node's certificate works from its first call.
      await grantNode(store, this.keys, request.name, signer);
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
        joinStore = await this.addMember(record, members, membership).catch(async (error: unknown) => {
          await revokeNode(store, this.keys, request.name).catch(() => undefined);
          throw error;
        });
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
      signer,
      servedBy: this.config.node.name,
    };
  }

  /**
   * A node that does not sign may not change etcd's membership, so the node that added it
   * promotes it; etcd refuses until the learner has caught up with the leader's log.
   */
  private async promoteWhenCaughtUp(memberId: string, name: string): Promise<void> {
    const until = Date.now() + PROMOTE_FOR_MS;
    let lastReason = '';
    while (!this.closed && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 1000).unref());
      try {
        const member = (await this.etcd().listMembers()).find((candidate) => candidate.id === memberId);
        if (!member || !member.isLearner) return;
        await this.etcd().promoteMember(memberId);
        this.logger.info({ node: name, member: memberId }, 'promoted the new etcd member to a voter');
        return;
      } catch (error) {
        // Not caught up yet, or etcd busy: the next round asks again.
        const reason = (error as Error).message;
        if (reason !== lastReason) this.logger.info({ node: name, member: memberId, reason }, 'the new etcd member is not promoted yet');
        lastReason = reason;
      }
    }
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
    void this.promoteWhenCaughtUp(added.member.id, record.name);
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
