import { readFileSync } from 'node:fs';
import { ConstantBackoff, noop } from 'cockatiel';
import { Etcd3, type IKeyValue, type IOptions, type Watcher } from 'etcd3';
import { EndpointSteering, type SteerListener } from './etcd-endpoints';

/** One key as the election and the registry see it. */
export interface StoredValue {
  key: string;
  value: string;
  /** The revision that created the key: for the leader key, the term unless the value names one. */
  createRevision: number;
  /** The revision of the last write: what a compare-and-swap compares. */
  modRevision: number;
  lease: string;
}

export interface CampaignResult {
  won: boolean;
  /** The leader key after the attempt: ours when won, the incumbent's otherwise (null if none). */
  leader: StoredValue | null;
  /** A planned move under way, which reserves the vacant key for its target. */
  handoff: StoredValue | null;
}

export interface SwapResult {
  swapped: boolean;
  /** Our write's revision when swapped; otherwise the key as it is now (null if gone). */
  revision: number;
  current: StoredValue | null;
}

/** Extra writes that ride in the same transaction as a release. */
export interface ReleaseWrites {
  put?: Array<{ key: string; value: string; lease?: string }>;
  delete?: string[];
}

export interface EtcdConnection {
  endpoints: string[];
  tls?: { ca: string; cert?: string; key?: string } | undefined;
  /** A user and password instead of the certificate's CN: only to undo a failed `--etcd-manage-access`. */
  password?: { user: string; password: string };
  /** Every unary call fails after this long: a hung call must never stall fencing. */
  callTimeoutMs: number;
  /**
   * The election's own calls (lease, campaign, renewals) fail after this long, and the
   * store then moves to the next endpoint: well inside the holder's fencing window.
   */
  steerAfterMs?: number;
  /**
   * The fast profile's renewal (compareValueAndPut) is sent to a second member as well when
   * the first has not answered within this long. Unset: never.
   */
  hedgeAfterMs?: number;
  onSteer?: SteerListener;
}

function toStored(kv: IKeyValue): StoredValue {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    lease: String(kv.lease),
  };
}

/**
 * `first`'s answer; if it has none within `afterMs` and `stillSilent()` says so then, the
 * first answer of `first` and `second()`. A failure before `afterMs` is `first`'s to report,
 * as without a hedge.
 */
export async function hedge<T>(first: Promise<T>, second: () => Promise<T>, afterMs: number, stillSilent: () => boolean = () => true): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), afterMs)));
  const settled = await Promise.race([first.then(() => 'settled' as const, () => 'settled' as const), late]);
  clearTimeout(timer);
  if (settled === 'settled' || !stillSilent()) return await first;
  try {
    return await Promise.any([first, second()]);
  } catch (error) {
    throw (error as AggregateError).errors[0];
  }
}

/** A keepalive was waiting on a member the store has just left: send it again. */
class MovedToAnotherMember extends Error {
  constructor() {
    super('moved to another etcd member');
  }
}

/** One member of the etcd cluster; the name is empty until the member has started once. */
export interface EtcdMember {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

function toMember(member: { ID: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean }): EtcdMember {
  return {
    id: String(member.ID),
    name: member.name,
    peerURLs: member.peerURLs,
    clientURLs: member.clientURLs,
    isLearner: Boolean(member.isLearner),
  };
}

/** Converts a watch event's key-value into the store's shape. */
export function storedFromWatch(kv: IKeyValue): StoredValue {
  return toStored(kv);
}

/**
 * The thin layer between vipd and etcd: leases, the leader compare-and-swap, and plain keys.
 * Retries are ours to decide (the fencing deadline depends on them), so the client's own
 * retry and circuit-breaker policies are switched off.
 */
export class EtcdStore {
  private readonly steering: EndpointSteering;
  private keepAliveStream: Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>> | null = null;
  private keepAliveEndpoint = '';
  private readonly pendingRenewals: Array<(ttlSeconds: number | Error) => void> = [];
  private raftTermSeen = 0;

  constructor(private readonly connection: EtcdConnection) {
    const credentials = connection.tls
      ? {
          rootCertificate: readFileSync(connection.tls.ca),
          ...(connection.tls.key ? { privateKey: readFileSync(connection.tls.key) } : {}),
          ...(connection.tls.cert ? { certChain: readFileSync(connection.tls.cert) } : {}),
        }
      : undefined;
    this.steering = new EndpointSteering({
      endpoints: connection.endpoints,
      probeIntervalMs: 1000,
      leaderlessMs: 3000,
      statusDeadlineMs: Math.max(20, Math.floor((connection.steerAfterMs ?? connection.callTimeoutMs) / 2)),
      onSteer: (from, to, reason) => {
        if (this.keepAliveStream) this.dropKeepAliveStream(new MovedToAnotherMember());
        connection.onSteer?.(from, to, reason);
      },
      connect: (endpoint, policy) => {
        const options: IOptions = {
          hosts: [endpoint],
          dialTimeout: connection.callTimeoutMs,
          faultHandling: {
            host: () => policy,
            global: noop,
            watchBackoff: new ConstantBackoff(250).next(),
          },
          defaultCallOptions: (context) =>
            context.isStream ? {} : { deadline: Date.now() + connection.callTimeoutMs },
          ...(credentials ? { credentials } : {}),
          ...(connection.password ? { auth: { username: connection.password.user, password: connection.password.password } } : {}),
        };
        return new Etcd3(options);
      },
    });
  }

  /** The client for the endpoint calls go to now: this node's own member unless it failed. */
  get client(): Etcd3 {
    return this.steering.active;
  }

  get endpoint(): string {
    return this.steering.endpoint;
  }

  get endpoints(): readonly string[] {
    return this.steering.all;
  }

  /** A client for one endpoint: maintenance calls that must reach a given member. */
  clientFor(endpoint: string): Etcd3 {
    return this.steering.clientFor(endpoint);
  }

  /** Learns the other voting members' client URLs, so calls can move to them. */
  async discoverMembers(): Promise<string[]> {
    const members = await this.listMembers();
    const urls = members.filter((member) => !member.isLearner).flatMap((member) => member.clientURLs);
    this.steering.setEndpoints(urls);
    return [...this.steering.all];
  }

  /** Call options for the election's calls: a short deadline, after which the store steers. */
  private hot(): { deadline: number } | undefined {
    return this.connection.steerAfterMs ? { deadline: Date.now() + this.connection.steerAfterMs } : undefined;
  }

  async grantLease(ttlSeconds: number): Promise<{ id: string; ttlSeconds: number }> {
    const response = await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }, this.hot());
    return { id: String(response.ID), ttlSeconds: Number(response.TTL) };
  }

  /**
   * Sends one keepalive on a long-lived stream and resolves with the TTL etcd granted
   * (0 means the lease no longer exists). Callers keep at most one renewal in flight. When
   * the store moves to another member while the keepalive waits (its member froze), it is
   * sent again there at once, within the same deadline: waiting for the next renewal tick
   * cost the holder its fencing deadline in the lab.
   */
  async renewLease(leaseId: string, timeoutMs: number): Promise<number> {
    const limitMs = Math.min(timeoutMs, this.connection.steerAfterMs ?? timeoutMs);
    const deadline = Date.now() + limitMs;
    for (;;) {
      try {
        return await this.sendKeepAlive(leaseId, deadline, limitMs);
      } catch (error) {
        if (!(error instanceof MovedToAnotherMember) || Date.now() >= deadline) throw error;
      }
    }
  }

  private async sendKeepAlive(leaseId: string, deadline: number, limitMs: number): Promise<number> {
    return await new Promise<number>((resolve, reject) => {
      let done = false;
      let endpoint = this.endpoint;
      const settle = (result: number | Error): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (result instanceof Error) reject(result);
        else resolve(result);
      };
      const timer = setTimeout(() => {
        const error = new Error(`lease renewal timed out after ${limitMs}ms`);
        // The stream waits on a silent member: drop it, with every renewal on it.
        if (this.keepAliveStream && this.keepAliveEndpoint === endpoint) this.dropKeepAliveStream(error);
        settle(error);
        this.steering.report(endpoint, error);
      }, Math.max(0, deadline - Date.now()));
      this.openKeepAliveStream().then(
        (stream) => {
          if (done) return;
          endpoint = this.keepAliveEndpoint;
          this.pendingRenewals.push(settle);
          stream.write({ ID: leaseId });
        },
        (error: unknown) => settle(error instanceof Error ? error : new Error(String(error))),
      );
    });
  }

  private async openKeepAliveStream(): Promise<NonNullable<EtcdStore['keepAliveStream']>> {
    // A stream opened on a member the store has since left goes too.
    if (this.keepAliveStream && this.keepAliveEndpoint !== this.endpoint) this.dropKeepAliveStream(new MovedToAnotherMember());
    if (this.keepAliveStream) return this.keepAliveStream;
    const endpoint = this.endpoint;
    const stream = await this.client.leaseClient.leaseKeepAlive();
    this.keepAliveEndpoint = endpoint;
    stream.on('data', (response: { TTL: string; header?: { raft_term?: string } }) => {
      this.noteTerm(response.header);
      this.pendingRenewals.shift()?.(Number(response.TTL));
    });
    stream.on('error', (error: Error) => {
      if (this.keepAliveStream !== stream) return;
      this.dropKeepAliveStream(error);
      this.steering.report(endpoint, error);
    });
    stream.on('end', () => {
      if (this.keepAliveStream === stream) this.dropKeepAliveStream(new Error('keepalive stream ended'));
    });
    this.keepAliveStream = stream;
    return stream;
  }

  private dropKeepAliveStream(reason: Error): void {
    const stream = this.keepAliveStream;
    this.keepAliveStream = null;
    for (const settle of this.pendingRenewals.splice(0)) settle(reason);
    try {
      stream?.end();
    } catch {
      // Already broken: nothing to close.
    }
  }

  async revokeLease(leaseId: string): Promise<void> {
    await this.client.leaseClient.leaseRevoke({ ID: leaseId });
  }

  /**
   * With access control on, etcd refuses a write whose user's rights changed while it was in
   * flight ("revision of auth store is old", e.g. as a node joins or is removed). It was not
   * applied, so it is sent once more, within the same deadline.
   */
  private async retryOnAuthChange<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (!/revision of auth store is old/.test((error as Error).message)) throw error;
      return await call();
    }
  }

  private async txn(...args: Parameters<Etcd3['kv']['txn']>): ReturnType<Etcd3['kv']['txn']> {
    return await this.retryOnAuthChange(() => this.client.kv.txn(...args));
  }

  /**
   * Takes the leader key if nobody holds it and no planned move reserves it; otherwise reads
   * who holds it and any reservation. One round trip.
   */
  async campaign(leaderKey: string, handoffKey: string, value: string, leaseId: string): Promise<CampaignResult> {
    const key = Buffer.from(leaderKey);
    const handoff = Buffer.from(handoffKey);
    const response = await this.txn({
      compare: [
        { key, target: 'Create', result: 'Equal', create_revision: 0 },
        { key: handoff, target: 'Create', result: 'Equal', create_revision: 0 },
      ],
      success: [{ request_put: { key, value: Buffer.from(value), lease: leaseId } }],
      failure: [{ request_range: { key } }, { request_range: { key: handoff } }],
    }, this.hot());
    if (response.succeeded) {
      const revision = Number(response.header.revision);
      return {
        won: true,
        leader: { key: leaderKey, value, createRevision: revision, modRevision: revision, lease: leaseId },
        handoff: null,
      };
    }
    const leader = response.responses[0]?.response_range.kvs[0];
    const reserved = response.responses[1]?.response_range.kvs[0];
    return { won: false, leader: leader ? toStored(leader) : null, handoff: reserved ? toStored(reserved) : null };
  }

  /** The target of a planned move takes the vacant key and clears the reservation naming it. */
  async claimHandoff(leaderKey: string, handoff: StoredValue, value: string, leaseId: string): Promise<number | null> {
    const key = Buffer.from(leaderKey);
    const handoffKey = Buffer.from(handoff.key);
    const response = await this.txn({
      compare: [
        { key, target: 'Create', result: 'Equal', create_revision: 0 },
        { key: handoffKey, target: 'Mod', result: 'Equal', mod_revision: handoff.modRevision },
      ],
      success: [
        { request_put: { key, value: Buffer.from(value), lease: leaseId } },
        { request_delete_range: { key: handoffKey } },
      ],
    }, this.hot());
    return response.succeeded ? Number(response.header.revision) : null;
  }

  /**
   * Writes the key only if it has not changed since `expectedModRevision`: the fast
   * profile's renewal (by the holder) and takeover (by a node that saw no renewal).
   */
  async compareAndSwap(key: string, value: string, leaseId: string, expectedModRevision: number): Promise<SwapResult> {
    const keyBytes = Buffer.from(key);
    const response = await this.txn({
      compare: [{ key: keyBytes, target: 'Mod', result: 'Equal', mod_revision: expectedModRevision }],
      success: [{ request_put: { key: keyBytes, value: Buffer.from(value), lease: leaseId } }],
      failure: [{ request_range: { key: keyBytes } }],
    }, this.hot());
    if (response.succeeded) return { swapped: true, revision: Number(response.header.revision), current: null };
    const current = response.responses[0]?.response_range.kvs[0];
    return { swapped: false, revision: Number(response.header.revision), current: current ? toStored(current) : null };
  }

  /**
   * Rewrites the key only while it still holds exactly `value`: the fast profile's renewal.
   * Unlike compareAndSwap it allows several writers' requests in flight at once.
   */
  async compareValueAndPut(key: string, value: string, leaseId: string): Promise<SwapResult> {
    const keyBytes = Buffer.from(key);
    const valueBytes = Buffer.from(value);
    const request = {
      compare: [{ key: keyBytes, target: 'Value' as const, result: 'Equal' as const, value: valueBytes }],
      success: [{ request_put: { key: keyBytes, value: valueBytes, lease: leaseId } }],
      failure: [{ request_range: { key: keyBytes } }],
    };
    const send = (client: Etcd3): ReturnType<Etcd3['kv']['txn']> => this.retryOnAuthChange(() => client.kv.txn(request, this.hot()));
    const standby = this.steering.standby;
    const hedgeAfterMs = this.connection.hedgeAfterMs;
    const endpoint = this.endpoint;
    // The same value compared and written again is idempotent, so a renewal may go to two
    // members: a frozen own member then costs nothing but the wait (docs/safety.md). Only a
    // member that answered nothing at all meanwhile: a slow, busy etcd that still answers
    // would only get twice the writes.
    const response = standby && hedgeAfterMs
      ? await hedge(send(this.client), () => send(this.steering.clientFor(standby)), hedgeAfterMs, () => this.steering.silentForMs(endpoint) >= hedgeAfterMs)
      : await send(this.client);
    if (response.succeeded) return { swapped: true, revision: Number(response.header.revision), current: null };
    const current = response.responses[0]?.response_range.kvs[0];
    return { swapped: false, revision: Number(response.header.revision), current: current ? toStored(current) : null };
  }

  /** Deletes the leader key only if our lease still owns it, with the extra writes, atomically. */
  async resign(leaderKey: string, leaseId: string, writes: ReleaseWrites = {}): Promise<boolean> {
    const key = Buffer.from(leaderKey);
    const response = await this.txn({
      compare: [{ key, target: 'Lease', result: 'Equal', lease: leaseId }],
      success: [
        { request_delete_range: { key } },
        ...(writes.put ?? []).map((entry) => ({
          request_put: { key: Buffer.from(entry.key), value: Buffer.from(entry.value), ...(entry.lease ? { lease: entry.lease } : {}) },
        })),
        ...(writes.delete ?? []).map((entry) => ({ request_delete_range: { key: Buffer.from(entry) } })),
      ],
    });
    return response.succeeded;
  }

  async delete(key: string): Promise<void> {
    await this.client.kv.deleteRange({ key: Buffer.from(key) });
  }

  /** Deletes every key from `from` (inclusive) up to `to` (exclusive). */
  async deleteRange(from: string, to: string): Promise<void> {
    await this.client.kv.deleteRange({ key: Buffer.from(from), range_end: Buffer.from(to) });
  }

  /** The highest etcd raft term any answer has carried: it grows with every change of etcd leader. */
  get raftTerm(): number {
    return this.raftTermSeen;
  }

  private noteTerm(header: { raft_term?: string } | undefined): number {
    const term = Number(header?.raft_term ?? 0);
    if (term > this.raftTermSeen) this.raftTermSeen = term;
    return term;
  }

  /** A linearizable read of one key, with the raft term of the member that answered. */
  async readWithTerm(key: string): Promise<{ stored: StoredValue | null; raftTerm: number }> {
    const response = await this.client.kv.range({ key: Buffer.from(key) }, this.hot());
    const first = response.kvs[0];
    return { stored: first ? toStored(first) : null, raftTerm: this.noteTerm(response.header) };
  }

  async get(key: string): Promise<StoredValue | null> {
    const response = await this.client.kv.range({ key: Buffer.from(key) });
    const first = response.kvs[0];
    return first ? toStored(first) : null;
  }

  async getPrefix(prefix: string): Promise<StoredValue[]> {
    const response = await this.client.getAll().prefix(prefix).exec();
    return response.kvs.map(toStored);
  }

  async put(key: string, value: string, leaseId?: string): Promise<void> {
    await this.retryOnAuthChange(() => this.client.kv.put({ key: Buffer.from(key), value: Buffer.from(value), ...(leaseId ? { lease: leaseId } : {}) }));
  }

  /** Writes the key only if it does not exist yet; returns what is stored afterwards. */
  async putIfAbsent(key: string, value: string): Promise<StoredValue> {
    const keyBytes = Buffer.from(key);
    const response = await this.txn({
      compare: [{ key: keyBytes, target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [{ request_put: { key: keyBytes, value: Buffer.from(value) } }],
      failure: [{ request_range: { key: keyBytes } }],
    });
    const existing = response.responses[0]?.response_range?.kvs[0];
    if (!response.succeeded && existing) return toStored(existing);
    const revision = Number(response.header.revision);
    return { key, value, createRevision: revision, modRevision: revision, lease: '0' };
  }

  /**
   * Writes every entry only if none of them, nor any key in `alsoAbsent`, exists yet: one
   * transaction. On failure, returns the keys that were in the way.
   */
  async putAllIfAbsent(entries: Array<{ key: string; value: string }>, alsoAbsent: string[] = []): Promise<{ ok: true } | { ok: false; existing: StoredValue[] }> {
    const keys = [...entries.map((entry) => entry.key), ...alsoAbsent].map((key) => Buffer.from(key));
    const response = await this.txn({
      compare: keys.map((key) => ({ key, target: 'Create' as const, result: 'Equal' as const, create_revision: 0 })),
      success: entries.map((entry) => ({ request_put: { key: Buffer.from(entry.key), value: Buffer.from(entry.value) } })),
      failure: keys.map((key) => ({ request_range: { key } })),
    });
    if (response.succeeded) return { ok: true };
    return { ok: false, existing: response.responses.flatMap((answer) => answer.response_range?.kvs.map(toStored) ?? []) };
  }

  /** Deletes the key only if nobody wrote it since `modRevision`. */
  async deleteIfUnchanged(key: string, modRevision: number): Promise<boolean> {
    const keyBytes = Buffer.from(key);
    const response = await this.txn({
      compare: [{ key: keyBytes, target: 'Mod', result: 'Equal', mod_revision: modRevision }],
      success: [{ request_delete_range: { key: keyBytes } }],
    });
    return response.succeeded;
  }

  // ---- membership of the etcd cluster itself (the embedded store) ----

  async listMembers(): Promise<EtcdMember[]> {
    const response = await this.client.cluster.memberList({ linearizable: true });
    return response.members.map(toMember);
  }

  /** Adds a non-voting member: it does not count towards quorum until promoted, so an absent joiner cannot stall the cluster. */
  async addLearner(peerUrl: string): Promise<{ member: EtcdMember; members: EtcdMember[] }> {
    const response = await this.client.cluster.memberAdd({ peerURLs: [peerUrl], isLearner: true });
    return { member: toMember(response.member), members: response.members.map(toMember) };
  }

  /**
   * Fails until the learner has caught up with the leader's log. Sent to the raft leader:
   * etcd 3.4 forwards a promotion from a follower without the caller's user, and with
   * access control on, the leader refuses it until the call times out.
   */
  async promoteMember(id: string): Promise<void> {
    const members = await this.listMembers();
    let leader: EtcdMember | undefined;
    for (const member of members.filter((candidate) => !candidate.isLearner)) {
      const url = member.clientURLs[0];
      if (!url) continue;
      const status = await this.clientFor(url).maintenance.status({ deadline: Date.now() + this.connection.callTimeoutMs }).catch(() => null);
      if (status) {
        leader = members.find((candidate) => candidate.id === String(status.leader));
        break;
      }
    }
    const client = leader?.clientURLs[0] ? this.clientFor(leader.clientURLs[0]) : this.client;
    await client.cluster.memberPromote({ ID: id });
  }

  async removeMember(id: string): Promise<void> {
    await this.client.cluster.memberRemove({ ID: id });
  }

  async watchKey(key: string): Promise<Watcher> {
    return await this.client.watch().key(key).create();
  }

  async watchPrefix(prefix: string): Promise<Watcher> {
    return await this.client.watch().prefix(prefix).create();
  }

  close(): void {
    this.dropKeepAliveStream(new Error('closed'));
    this.steering.close();
  }
}
