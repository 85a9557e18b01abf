import { Type, type Static } from '@sinclair/typebox';
import { readFileSync, statSync, type Stats } from 'node:fs';
import { hostname } from 'node:os';
import { parseDocument, YAMLError } from 'yaml';
import { deriveEtcdTiming, timingProblem } from './etcd-timing';
import { HealthSchema, resolveHealth, type HealthConfig } from './health';
import { InputError, Schema } from './schema-check';

const Duration = (description: string) =>
  Type.String({
    pattern: '^[0-9]+(\\.[0-9]+)?(ms|s|m)$',
    description: `a duration with a unit, like 400ms, 2s or 1m (${description})`,
  });

/** Interface names: the kernel's IFNAMSIZ is 16 including the NUL. */
const InterfaceName = Type.String({
  pattern: '^[A-Za-z0-9_.:@-]{1,15}$',
  description: 'a network interface name of 1 to 15 letters, digits or _.:@-',
});

/** What a hook runs on: the VIP installed, removed on purpose, or lost involuntarily. */
export const HOOK_EVENTS = ['acquire', 'release', 'fault'] as const;
export type HookEvent = (typeof HOOK_EVENTS)[number];

const Hook = Type.Object(
  {
    name: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,63}$', description: 'a label of 1 to 63 letters, digits or ._-' })),
    on: Type.Array(Type.Union(HOOK_EVENTS.map((event) => Type.Literal(event)), { description: 'one of acquire, release, fault' }), {
      minItems: 1,
      uniqueItems: true,
      description: 'a list of events from acquire, release, fault',
    }),
    command: Type.Optional(
      Type.Array(Type.String({ minLength: 1, description: 'a non-empty argument' }), {
        minItems: 1,
        description: 'an argv list like ["/usr/local/bin/repoint", "--to", "self"] (run without a shell)',
      }),
    ),
    webhook: Type.Optional(
      Type.Object(
        {
          url: Type.String({ pattern: '^https?://\\S+$', description: 'an https:// URL (http:// only to loopback)' }),
          // Values are not checked by pattern: a schema error would print them, and they are often secrets.
          headers: Type.Optional(
            Type.Record(Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" }), Type.String(), {
              description: 'a map of HTTP header names to values',
            }),
          ),
          ca: Type.Optional(Type.String({ minLength: 1, description: 'a path to the CA bundle (PEM) that signed the webhook server' })),
        },
        { additionalProperties: false },
      ),
    ),
    timeout: Type.Optional(Duration('kill or abandon the hook after this long, default 10s')),
    retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10, description: 'a whole number from 0 to 10' })),
    backoff: Type.Optional(Duration('the first retry delay, doubled for each further retry, default 1s')),
    required: Type.Optional(Type.Boolean({ description: 'true or false' })),
    cooldown: Type.Optional(Duration('required hooks: how long a node that failed one stays out of the election, default 30s')),
  },
  { additionalProperties: false },
);

const EtcdUrl = (what: string) =>
  Type.String({ pattern: '^https://[^\\s/]+:[0-9]+$', description: `an https URL with a port, like https://192.0.2.11:${what}` });

const EmbeddedEtcdSchema = Type.Object(
  {
    dataDir: Type.String({ pattern: '^/', description: 'an absolute path' }),
    pkiDir: Type.String({ pattern: '^/', description: 'an absolute path' }),
    clientURL: EtcdUrl('2379'),
    peerURL: EtcdUrl('2380'),
    initialCluster: Type.String({
      pattern: '^[a-z0-9.-]+=https://[^\\s,=]+(,[a-z0-9.-]+=https://[^\\s,=]+)*$',
      description: 'etcd --initial-cluster: NAME=https://IP:2380 pairs separated by commas',
    }),
    initialClusterState: Type.Union([Type.Literal('new'), Type.Literal('existing')], { description: '"new" or "existing"' }),
    /** Voting members' client URLs when this member joined as a learner: where it asks to be promoted. */
    clusterEndpoints: Type.Optional(Type.Array(EtcdUrl('2379'))),
    binary: Type.Optional(Type.String({ pattern: '^/', description: 'an absolute path to the etcd binary' })),
  },
  { additionalProperties: false },
);

const NodeName = Type.String({
  pattern: '^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$',
  description: 'a DNS-label-like node name: lowercase letters, digits, "-" and ".", at most 63',
});

export const ConfigSchema = new Schema(
  Type.Object(
    {
      cluster: Type.String({
        pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$',
        description: 'a cluster name of lowercase letters, digits and "-", at most 63',
      }),
      node: Type.Object(
        {
          name: Type.Optional(NodeName),
          interface: InterfaceName,
          /** Higher is preferred when several nodes campaign at once (issue 14). */
          priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: 'a whole number from 0 to 1000 (higher preferred), default 100' })),
        },
        { additionalProperties: false },
      ),
      vip: Type.Object(
        {
          mode: Type.Union([Type.Literal('static'), Type.Literal('dhcp')], {
            description: '"static" or "dhcp"',
          }),
          /** Static: the VIP. DHCP: the requested IP (option 50), optional. */
          address: Type.Optional(Type.String({ format: 'ip', description: 'an IPv4 or IPv6 address' })),
          /** DHCP: the VIP's own MAC; generated once per cluster when absent. */
          hwaddr: Type.Optional(Type.String({ format: 'mac', description: 'a MAC address like 02:00:00:09:7f:3f' })),
          dhcp: Type.Optional(
            Type.Object(
              { releaseOnStop: Type.Optional(Type.Boolean({ description: 'true or false' })) },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
      etcd: Type.Object(
        {
          endpoints: Type.Array(
            Type.String({
              pattern: '^https?://[^\\s/]+(:[0-9]+)?/?$',
              description: 'an etcd client URL such as http://192.0.2.11:2379',
            }),
            { minItems: 1, description: 'a list of at least one etcd client URL' },
          ),
          /** etcd's --election-timeout; it sets the shortest lease etcd grants. */
          electionTimeout: Type.Optional(Duration('etcd --election-timeout; default 1s, or derived from the election profile for the embedded etcd')),
          tls: Type.Optional(
            Type.Object(
              {
                ca: Type.String({ description: 'a path to the CA bundle (PEM)' }),
                cert: Type.Optional(Type.String({ description: 'a path to the client certificate (PEM)' })),
                key: Type.Optional(Type.String({ description: 'a path to the client key (PEM)' })),
              },
              { additionalProperties: false },
            ),
          ),
          /** The cluster's own etcd member on this node, run by `vipd run` (src/cluster/embedded-etcd.ts). */
          embedded: Type.Optional(EmbeddedEtcdSchema),
        },
        { additionalProperties: false },
      ),
      election: Type.Optional(
        Type.Object(
          {
            profile: Type.Optional(
              Type.Union([Type.Literal('default'), Type.Literal('fast')], { description: '"default" or "fast"' }),
            ),
            leaseTTL: Type.Optional(Duration('whole seconds, default 2s')),
            renewInterval: Type.Optional(Duration('default 400ms; fast profile 40ms')),
            holdTimeout: Type.Optional(Duration('fast profile only, default 200ms')),
            fencingMargin: Type.Optional(Duration('default 200ms; fast profile 40ms')),
            preempt: Type.Optional(Type.Boolean({ description: 'true or false' })),
            preemptDelay: Type.Optional(Duration('how long a preferred node must stay healthy before it takes the VIP back, default 30s')),
          },
          { additionalProperties: false },
        ),
      ),
      takeover: Type.Optional(
        Type.Object(
          {
            probeWindow: Type.Optional(Duration('how long to listen for another answer for the VIP, default 30ms; 0s skips the probe')),
            maxProbeWait: Type.Optional(Duration('give up waiting for silence after this long, default 3s')),
          },
          { additionalProperties: false },
        ),
      ),
      api: Type.Optional(
        Type.Object(
          {
            enabled: Type.Optional(Type.Boolean({ description: 'true or false' })),
            port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'a TCP port from 1 to 65535' })),
            fqdn: Type.Optional(
              Type.String({
                pattern: '^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$',
                description: 'a DNS name like vip.example.com',
              }),
            ),
          },
          { additionalProperties: false },
        ),
      ),
      announce: Type.Optional(
        Type.Object(
          {
            burstCount: Type.Optional(
              Type.Integer({ minimum: 1, maximum: 50, description: 'a whole number from 1 to 50' }),
            ),
            burstInterval: Type.Optional(Duration('default 300ms')),
            refreshInterval: Type.Optional(Duration('0s turns the refresh off, default 10s')),
          },
          { additionalProperties: false },
        ),
      ),
      hooks: Type.Optional(Type.Array(Hook, { maxItems: 32, description: 'a list of at most 32 hooks' })),
      health: Type.Optional(HealthSchema),
      /** Written by vipd init and vipd join (docs/security.md). */
      security: Type.Optional(
        Type.Object(
          {
            /** A signing node's cluster key, which opens the CA's sealed private key. */
            clusterKeyFile: Type.Optional(Type.String({ pattern: '^/', description: 'an absolute path' })),
            /** A non-signing node's HTTPS certificate and key, issued at join. */
            servingCertificate: Type.Optional(
              Type.Object(
                {
                  cert: Type.String({ pattern: '^/', description: 'an absolute path' }),
                  key: Type.String({ pattern: '^/', description: 'an absolute path' }),
                },
                { additionalProperties: false },
              ),
            ),
          },
          { additionalProperties: false },
        ),
      ),
      log: Type.Optional(
        Type.Object(
          {
            level: Type.Optional(
              Type.Union(
                ['fatal', 'error', 'warn', 'info', 'debug', 'trace'].map((level) => Type.Literal(level)),
                { description: 'one of fatal, error, warn, info, debug, trace' },
              ),
            ),
          },
          { additionalProperties: false },
        ),
      ),
    },
    { additionalProperties: false },
  ),
);

export type ConfigFile = Static<typeof ConfigSchema.schema>;

/** The config with every default filled in and every duration in milliseconds. */
export interface Config {
  cluster: string;
  node: { name: string; interface: string };
  vip: VipConfig;
  etcd: {
    endpoints: string[];
    electionTimeoutMs: number;
    tls?: { ca: string; cert?: string; key?: string };
    embedded?: EmbeddedEtcdConfig;
  };
  election: ElectionConfig;
  /** Which node should hold the VIP when several may (issue 14); changed live by a reload. */
  preference: PreferenceConfig;
  takeover: { probeWindowMs: number; maxProbeWaitMs: number };
  announce: { burstCount: number; burstIntervalMs: number; refreshIntervalMs: number };
  /** The HTTPS API and dashboard, served by every node on every address, the VIP included. */
  api: { enabled: boolean; port: number; fqdn: string | null };
  /** Commands and webhooks run when the VIP comes, goes or is lost (src/hooks/). */
  hooks: HookConfig[];
  /** Checks that must pass for this node to be eligible (src/health/). */
  health: HealthConfig;
  /** A signing node has the cluster key; another node has a serving certificate issued at join. */
  security: { clusterKeyFile: string | null; servingCertificate: { cert: string; key: string } | null };
  logLevel: string;
}

export interface HookConfig {
  /** For logs, history and status; never includes arguments, headers or a URL's query. */
  name: string;
  /** The dotted config path (hooks[0]), so later checks name the field. */
  field: string;
  on: HookEvent[];
  action: { kind: 'command'; argv: string[] } | { kind: 'webhook'; url: string; headers: Record<string, string>; ca: string | null };
  timeoutMs: number;
  retries: number;
  backoffMs: number;
  /** A failed required acquire hook makes the node give the VIP up and sit out cooldownMs. */
  required: boolean;
  cooldownMs: number;
}

export type VipConfig =
  | { mode: 'static'; address: string }
  | { mode: 'dhcp'; address: string | null; hwaddr: string | null; releaseOnStop: boolean };

/** Why a MAC cannot be the VIP's own hardware address, or null if it can. */
export function unusableVipMac(mac: string): string | null {
  const bytes = mac.split(':').map((octet) => parseInt(octet, 16));
  if (bytes.length !== 6 || bytes.some((byte) => Number.isNaN(byte))) return 'must be a MAC address of 6 octets like 02:00:00:09:7f:3f';
  if (bytes.every((byte) => byte === 0)) return 'must not be all zeros';
  // IEEE 802: the lowest bit of the first octet marks a group (multicast) address.
  if ((bytes[0]! & 1) === 1) return 'is a multicast address (the lowest bit of the first octet is set); use a unicast MAC such as 02:00:00:09:7f:3f';
  return null;
}

/**
 * How holding is timed. default: the holder may keep the VIP while its etcd lease lives
 * (whole seconds). fast: the holder also renews the leader key by compare-and-swap every
 * renewInterval, and another node may take it after holdTimeout without a renewal.
 */
export interface ElectionConfig {
  profile: 'default' | 'fast';
  leaseTtlSeconds: number;
  /** The lease keepalive interval (both profiles). */
  leaseRenewIntervalMs: number;
  /** default: same as leaseRenewIntervalMs. fast: the compare-and-swap renewal interval. */
  renewIntervalMs: number;
  /** fast only: silence after which another node may take the VIP. */
  holdTimeoutMs: number;
  fencingMarginMs: number;
}

export interface PreferenceConfig {
  /** Higher wins when several nodes campaign at once; default 100. */
  priority: number;
  /** A preferred node takes the VIP back from a less preferred holder, by a planned move. */
  preempt: boolean;
  /** How long it must have been eligible without a break before it does. */
  preemptDelayMs: number;
}

/** Node's timers hold at most 2^31−1 ms; anything longer silently becomes 1 ms. */
export const MAX_DURATION_MS = 24 * 60 * 60 * 1000;

export function parseDuration(text: string, field = ''): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)$/.exec(text);
  if (!match) throw new InputError(field, `"${text.slice(0, 40)}" is not a duration like 400ms, 2s or 1m`);
  const scale = { ms: 1, s: 1000, m: 60_000 }[match[2] as 'ms' | 's' | 'm'];
  const ms = Math.round(Number(match[1]) * scale);
  if (ms > MAX_DURATION_MS) throw new InputError(field, `must be at most 24h (got ${text})`);
  return ms;
}

/** etcd raises any shorter TTL silently to 1.5 × its election timeout, rounded up (lessor minLeaseTTL). */
export function minimumLeaseTtlSeconds(electionTimeoutMs: number): number {
  return Math.ceil((1.5 * electionTimeoutMs) / 1000);
}

const MIN_FENCING_MARGIN_MS = 10;
/** A vipd config is a few hundred bytes; a huge file is a mistake, and parsing it would stall. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/** The schema's pattern admits any port digits; a URL must also parse and name a real port. */
function checkEtcdEndpoint(endpoint: string, field: string): void {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new InputError(field, `"${endpoint.slice(0, 80)}" is not a valid URL`);
  }
  const port = url.port === '' ? 0 : Number(url.port);
  if (url.port !== '' && (port < 1 || port > 65535)) throw new InputError(field, `port ${url.port} is not between 1 and 65535`);
}

/** Checks a parsed YAML document and fills in defaults; throws InputError naming the field. */
export function resolveConfig(document: unknown): Config {
  const file = ConfigSchema.check(document);
  file.etcd.endpoints.forEach((endpoint, index) => checkEtcdEndpoint(endpoint, `etcd.endpoints[${index}]`));
  const electionTimeoutMs = parseDuration(file.etcd.electionTimeout ?? '1s', 'etcd.electionTimeout');
  const leaseTtlMs = parseDuration(file.election?.leaseTTL ?? '2s', 'election.leaseTTL');
  if (leaseTtlMs % 1000 !== 0 || leaseTtlMs === 0) {
    throw new InputError('election.leaseTTL', 'must be a whole number of seconds (etcd leases have 1 s resolution)');
  }
  const minimum = minimumLeaseTtlSeconds(electionTimeoutMs);
  if (leaseTtlMs / 1000 < minimum) {
    throw new InputError(
      'election.leaseTTL',
      `must be at least ${minimum}s: etcd silently raises shorter leases to 1.5 × its election timeout (${electionTimeoutMs}ms)`,
    );
  }
  const profile = file.election?.profile ?? 'default';
  const fast = profile === 'fast';
  const renewIntervalMs = parseDuration(file.election?.renewInterval ?? (fast ? '40ms' : '400ms'), 'election.renewInterval');
  const fencingMarginMs = parseDuration(file.election?.fencingMargin ?? (fast ? '40ms' : '200ms'), 'election.fencingMargin');
  const holdTimeoutMs = fast ? parseDuration(file.election?.holdTimeout ?? '200ms', 'election.holdTimeout') : leaseTtlMs;
  if (!fast && file.election?.holdTimeout !== undefined) {
    throw new InputError('election.holdTimeout', 'applies to the fast profile only (election.profile: fast)');
  }
  // The window a renewal must land in: the lease (default) or the hold timeout (fast).
  const windowMs = fast ? holdTimeoutMs : leaseTtlMs;
  const windowName = fast ? 'holdTimeout' : 'leaseTTL';
  // The holder needs this long to notice its deadline and remove the address (docs/safety.md, assumption 3).
  if (fencingMarginMs < MIN_FENCING_MARGIN_MS) {
    throw new InputError('election.fencingMargin', `must be at least ${MIN_FENCING_MARGIN_MS}ms: the holder needs time to remove the VIP before another node may take it`);
  }
  if (fencingMarginMs >= windowMs) {
    throw new InputError('election.fencingMargin', `must be shorter than election.${windowName}`);
  }
  if (renewIntervalMs < 10 || renewIntervalMs * 2 > windowMs - fencingMarginMs) {
    throw new InputError(
      'election.renewInterval',
      `must be at least 10ms and leave room for two renewals before the fencing deadline (${windowName} − fencingMargin)`,
    );
  }
  if (fast && holdTimeoutMs >= leaseTtlMs) {
    throw new InputError('election.holdTimeout', 'must be shorter than election.leaseTTL');
  }
  const election: ElectionConfig = {
    profile,
    leaseTtlSeconds: leaseTtlMs / 1000,
    leaseRenewIntervalMs: fast ? Math.round(leaseTtlMs / 5) : renewIntervalMs,
    renewIntervalMs,
    holdTimeoutMs,
    fencingMarginMs,
  };
  const etcdElectionTimeoutMs = file.etcd.embedded ? embeddedElectionTimeoutMs(file.etcd.electionTimeout, electionTimeoutMs, election) : electionTimeoutMs;
  const probeWindowMs = parseDuration(file.takeover?.probeWindow ?? '30ms', 'takeover.probeWindow');
  const maxProbeWaitMs = parseDuration(file.takeover?.maxProbeWait ?? '3s', 'takeover.maxProbeWait');
  if (probeWindowMs > 1000) throw new InputError('takeover.probeWindow', 'must be at most 1s');
  const burstIntervalMs = parseDuration(file.announce?.burstInterval ?? '300ms', 'announce.burstInterval');
  const refreshIntervalMs = parseDuration(file.announce?.refreshInterval ?? '10s', 'announce.refreshInterval');
  if (refreshIntervalMs !== 0 && refreshIntervalMs < 100) {
    throw new InputError('announce.refreshInterval', 'must be 0s (off) or at least 100ms');
  }
  let vip: VipConfig;
  if (file.vip.mode === 'static') {
    if (!file.vip.address) throw new InputError('vip.address', 'is required in static mode');
    if (file.vip.hwaddr !== undefined) throw new InputError('vip.hwaddr', 'applies to DHCP mode only (vip.mode: dhcp)');
    if (file.vip.dhcp !== undefined) throw new InputError('vip.dhcp', 'applies to DHCP mode only (vip.mode: dhcp)');
    vip = { mode: 'static', address: file.vip.address };
  } else {
    if (file.vip.address && !file.vip.address.includes('.')) throw new InputError('vip.address', 'DHCP mode is IPv4 only (DHCPv4)');
    const problem = file.vip.hwaddr ? unusableVipMac(file.vip.hwaddr) : null;
    if (problem) throw new InputError('vip.hwaddr', problem);
    vip = {
      mode: 'dhcp',
      address: file.vip.address ?? null,
      hwaddr: file.vip.hwaddr?.toLowerCase() ?? null,
      releaseOnStop: file.vip.dhcp?.releaseOnStop ?? false,
    };
  }
  const hooks = (file.hooks ?? []).map((hook, index) => resolveHook(hook, `hooks[${index}]`));
  const preemptDelayMs = parseDuration(file.election?.preemptDelay ?? '30s', 'election.preemptDelay');
  if (preemptDelayMs > 3_600_000) throw new InputError('election.preemptDelay', 'must be at most 1h');
  if (file.election?.preemptDelay !== undefined && file.election.preempt !== true) {
    throw new InputError('election.preemptDelay', 'applies only with election.preempt: true');
  }
  return {
    cluster: file.cluster,
    node: { name: file.node.name ?? defaultNodeName(), interface: file.node.interface },
    vip,
    etcd: {
      endpoints: file.etcd.endpoints,
      electionTimeoutMs: etcdElectionTimeoutMs,
      ...(file.etcd.tls ? { tls: file.etcd.tls } : {}),
      ...(file.etcd.embedded ? { embedded: resolveEmbedded(file.etcd.embedded, file.etcd.tls) } : {}),
    },
    election,
    preference: { priority: file.node.priority ?? 100, preempt: file.election?.preempt ?? false, preemptDelayMs },
    takeover: { probeWindowMs, maxProbeWaitMs },
    announce: { burstCount: file.announce?.burstCount ?? 6, burstIntervalMs, refreshIntervalMs },
    api: { enabled: file.api?.enabled ?? true, port: file.api?.port ?? 443, fqdn: file.api?.fqdn?.toLowerCase() ?? null },
    hooks,
    health: resolveHealth(file.health, parseDuration),
    security: { clusterKeyFile: file.security?.clusterKeyFile ?? null, servingCertificate: file.security?.servingCertificate ?? null },
    logLevel: file.log?.level ?? 'info',
  };
}

/** The embedded members' timing follows the election profile unless set; a setting that would flap is refused. */
function embeddedElectionTimeoutMs(text: string | undefined, parsedMs: number, election: ElectionConfig): number {
  if (text === undefined) return deriveEtcdTiming(election).electionTimeoutMs;
  const problem = timingProblem(parsedMs, election);
  if (problem) throw new InputError('etcd.electionTimeout', problem);
  return parsedMs;
}

type HookFile = NonNullable<ConfigFile['hooks']>[number];

/** Plain HTTP would carry the event and any Authorization header in clear: only loopback never leaves the host. */
function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

function resolveHook(hook: HookFile, field: string): HookConfig {
  if ((hook.command === undefined) === (hook.webhook === undefined)) {
    throw new InputError(field, 'needs exactly one of command or webhook');
  }
  let action: HookConfig['action'];
  let name: string;
  if (hook.command) {
    const program = hook.command[0]!;
    if (!program.startsWith('/')) throw new InputError(`${field}.command[0]`, 'must be an absolute path (hooks run without a shell and without PATH lookup surprises)');
    action = { kind: 'command', argv: hook.command };
    name = hook.name ?? program;
  } else {
    const webhook = hook.webhook!;
    let url: URL;
    try {
      url = new URL(webhook.url);
    } catch {
      throw new InputError(`${field}.webhook.url`, 'is not a valid URL');
    }
    if (url.username || url.password) throw new InputError(`${field}.webhook.url`, 'must not carry credentials: put them in webhook.headers');
    if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
      throw new InputError(`${field}.webhook.url`, 'must be https://: plain http:// is allowed only to loopback (127.0.0.0/8, ::1, localhost)');
    }
    if (url.protocol === 'http:' && webhook.ca !== undefined) throw new InputError(`${field}.webhook.ca`, 'applies to https:// URLs only');
    for (const [header, value] of Object.entries(webhook.headers ?? {})) {
      if (/[\r\n\0]/.test(value)) throw new InputError(`${field}.webhook.headers.${header}`, 'must not contain line breaks or NUL');
    }
    action = { kind: 'webhook', url: url.href, headers: { ...webhook.headers }, ca: webhook.ca ?? null };
    // The query may hold a token: never show it.
    name = hook.name ?? `${url.origin}${url.pathname}`;
  }
  const timeoutMs = parseDuration(hook.timeout ?? '10s', `${field}.timeout`);
  if (timeoutMs < 10 || timeoutMs > 300_000) throw new InputError(`${field}.timeout`, 'must be from 10ms to 5m');
  const backoffMs = parseDuration(hook.backoff ?? '1s', `${field}.backoff`);
  if (backoffMs > 60_000) throw new InputError(`${field}.backoff`, 'must be at most 1m');
  const required = hook.required ?? false;
  if (required && !hook.on.includes('acquire')) {
    throw new InputError(`${field}.required`, 'applies to acquire hooks only: on release or fault the VIP is already gone');
  }
  if (hook.cooldown !== undefined && !required) throw new InputError(`${field}.cooldown`, 'applies to required hooks only (required: true)');
  const cooldownMs = parseDuration(hook.cooldown ?? '30s', `${field}.cooldown`);
  if (cooldownMs < 1000 || cooldownMs > 3_600_000) throw new InputError(`${field}.cooldown`, 'must be from 1s to 1h');
  return { name, field, on: [...hook.on], action, timeoutMs, retries: hook.retries ?? 2, backoffMs, required, cooldownMs };
}

/** The embedded member of the cluster's own etcd, as `vipd init` and `vipd join` write it. */
export interface EmbeddedEtcdConfig {
  dataDir: string;
  pkiDir: string;
  clientURL: string;
  peerURL: string;
  initialCluster: string;
  initialClusterState: 'new' | 'existing';
  clusterEndpoints: string[];
  binary: string;
}

function resolveEmbedded(file: Static<typeof EmbeddedEtcdSchema>, tls: ConfigFile['etcd']['tls']): EmbeddedEtcdConfig {
  // The embedded store always runs with client-certificate auth: the agent needs its certificate.
  if (!tls?.cert || !tls.key) throw new InputError('etcd.tls', 'needs ca, cert and key with an embedded etcd (etcd.embedded)');
  return {
    dataDir: file.dataDir,
    pkiDir: file.pkiDir,
    clientURL: file.clientURL,
    peerURL: file.peerURL,
    initialCluster: file.initialCluster,
    initialClusterState: file.initialClusterState,
    clusterEndpoints: file.clusterEndpoints ?? [],
    binary: file.binary ?? '/usr/bin/etcd',
  };
}

function defaultNodeName(): string {
  const name = hostname().toLowerCase().split('.')[0] ?? '';
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name)) {
    throw new InputError('node.name', `is required: the hostname "${hostname()}" is not a usable node name`);
  }
  return name;
}

/**
 * Refuses a file that another user could rewrite: whoever edits the config or the etcd
 * credentials decides where the VIP goes. Group- or world-writable files are refused.
 */
function checkNotWritableByOthers(path: string, field: string): void {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    throw new InputError(field, `cannot read ${path}: ${(error as Error).message}`);
  }
  if (!stats.isFile()) throw new InputError(field, `${path} is not a regular file`);
  if ((stats.mode & 0o022) !== 0) {
    const mode = (stats.mode & 0o777).toString(8).padStart(4, '0');
    const who = [stats.mode & 0o020 ? 'its group' : '', stats.mode & 0o002 ? 'every user' : ''].filter(Boolean).join(' and ');
    throw new InputError(field, `${path} is writable by ${who} (mode ${mode}); run: chmod go-w ${path}`);
  }
}

/**
 * YAML to plain data. Anything the parser only warns about (an unknown tag such as
 * `!custom`) is refused too: it would otherwise be read as a plain string.
 */
function parseYamlStrictly(text: string, path: string): unknown {
  const document = parseDocument(text, { logLevel: 'silent' });
  const problem = document.errors[0] ?? document.warnings[0];
  if (problem) {
    const where = problem instanceof YAMLError && problem.linePos ? ` at line ${problem.linePos[0].line}` : '';
    const message = (problem.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw new InputError('', `${path} is not valid YAML${where}: ${parserWords(message)}`);
  }
  try {
    return document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw new InputError('', `${path} is not valid YAML: ${parserWords((error as Error).message.split('\n')[0] ?? '')}`);
  }
}

/**
 * The parser quotes the token it choked on, raw: escape sequences from the file must not
 * reach the operator's terminal, and a long token must not fill it.
 */
function parserWords(message: string, limit = 200): string {
  // eslint-disable-next-line no-control-regex
  const escaped = message.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return escaped.length > limit ? `${escaped.slice(0, limit)}…` : escaped;
}

/** Reads, parses and checks a config file. */
export function loadConfig(path: string): Config {
  let text: string;
  try {
    const size = statSync(path).size;
    if (size > MAX_CONFIG_BYTES) throw new Error(`it is ${size} bytes; a config is at most ${MAX_CONFIG_BYTES}`);
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new InputError('--config', `cannot read ${path}: ${(error as Error).message}`);
  }
  checkNotWritableByOthers(path, '--config');
  const document = parseYamlStrictly(text, path);
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    throw new InputError('', `${path} must hold a YAML mapping with cluster, node, vip and etcd`);
  }
  const config = resolveConfig(document);
  for (const name of ['ca', 'cert', 'key'] as const) {
    const file = config.etcd.tls?.[name];
    if (file !== undefined) checkNotWritableByOthers(file, `etcd.tls.${name}`);
  }
  return config;
}
