import { Type, type Static } from '@sinclair/typebox';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml, YAMLParseError } from 'yaml';
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
          electionTimeout: Type.Optional(Duration('etcd --election-timeout, default 1s')),
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
  };
  election: ElectionConfig;
  takeover: { probeWindowMs: number; maxProbeWaitMs: number };
  announce: { burstCount: number; burstIntervalMs: number; refreshIntervalMs: number };
  /** The HTTPS API and dashboard, served by every node on every address, the VIP included. */
  api: { enabled: boolean; port: number; fqdn: string | null };
  logLevel: string;
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
 * How holding is timed. "lease": the holder may keep the VIP while its etcd lease lives
 * (whole seconds). "hold": the holder renews the leader key by compare-and-swap every
 * renewInterval, and another node may take it after holdTimeout without a renewal.
 */
export interface ElectionConfig {
  profile: 'default' | 'fast';
  mode: 'lease' | 'hold';
  leaseTtlSeconds: number;
  /** The lease keepalive interval (both modes). */
  leaseRenewIntervalMs: number;
  /** Lease mode: same as leaseRenewIntervalMs. Hold mode: the compare-and-swap renewal interval. */
  renewIntervalMs: number;
  /** Hold mode only: silence after which another node may take the VIP. */
  holdTimeoutMs: number;
  fencingMarginMs: number;
}

export function parseDuration(text: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)$/.exec(text);
  if (!match) throw new InputError('', `"${text}" is not a duration like 400ms, 2s or 1m`);
  const scale = { ms: 1, s: 1000, m: 60_000 }[match[2] as 'ms' | 's' | 'm'];
  return Math.round(Number(match[1]) * scale);
}

/** etcd raises any shorter TTL silently to 1.5 × its election timeout, rounded up (lessor minLeaseTTL). */
export function minimumLeaseTtlSeconds(electionTimeoutMs: number): number {
  return Math.ceil((1.5 * electionTimeoutMs) / 1000);
}

/** Checks a parsed YAML document and fills in defaults; throws InputError naming the field. */
export function resolveConfig(document: unknown): Config {
  const file = ConfigSchema.check(document);
  const electionTimeoutMs = parseDuration(file.etcd.electionTimeout ?? '1s');
  const leaseTtlMs = parseDuration(file.election?.leaseTTL ?? '2s');
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
  const renewIntervalMs = parseDuration(file.election?.renewInterval ?? (fast ? '40ms' : '400ms'));
  const fencingMarginMs = parseDuration(file.election?.fencingMargin ?? (fast ? '40ms' : '200ms'));
  const holdTimeoutMs = fast ? parseDuration(file.election?.holdTimeout ?? '200ms') : leaseTtlMs;
  if (!fast && file.election?.holdTimeout !== undefined) {
    throw new InputError('election.holdTimeout', 'applies to the fast profile only (election.profile: fast)');
  }
  // The window a renewal must land in: the lease (default) or the hold timeout (fast).
  const windowMs = fast ? holdTimeoutMs : leaseTtlMs;
  const windowName = fast ? 'holdTimeout' : 'leaseTTL';
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
    mode: fast ? 'hold' : 'lease',
    leaseTtlSeconds: leaseTtlMs / 1000,
    leaseRenewIntervalMs: fast ? Math.round(leaseTtlMs / 5) : renewIntervalMs,
    renewIntervalMs,
    holdTimeoutMs,
    fencingMarginMs,
  };
  const probeWindowMs = parseDuration(file.takeover?.probeWindow ?? '30ms');
  const maxProbeWaitMs = parseDuration(file.takeover?.maxProbeWait ?? '3s');
  if (probeWindowMs > 1000) throw new InputError('takeover.probeWindow', 'must be at most 1s');
  const burstIntervalMs = parseDuration(file.announce?.burstInterval ?? '300ms');
  const refreshIntervalMs = parseDuration(file.announce?.refreshInterval ?? '10s');
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
  return {
    cluster: file.cluster,
    node: { name: file.node.name ?? defaultNodeName(), interface: file.node.interface },
    vip,
    etcd: { endpoints: file.etcd.endpoints, electionTimeoutMs, ...(file.etcd.tls ? { tls: file.etcd.tls } : {}) },
    election,
    takeover: { probeWindowMs, maxProbeWaitMs },
    announce: { burstCount: file.announce?.burstCount ?? 6, burstIntervalMs, refreshIntervalMs },
    api: { enabled: file.api?.enabled ?? true, port: file.api?.port ?? 443, fqdn: file.api?.fqdn?.toLowerCase() ?? null },
    logLevel: file.log?.level ?? 'info',
  };
}

function defaultNodeName(): string {
  const name = hostname().toLowerCase().split('.')[0] ?? '';
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name)) {
    throw new InputError('node.name', `is required: the hostname "${hostname()}" is not a usable node name`);
  }
  return name;
}

/** Reads, parses and checks a config file. */
export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new InputError('--config', `cannot read ${path}: ${(error as Error).message}`);
  }
  let document: unknown;
  try {
    document = parseYaml(text, { maxAliasCount: 100 });
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}` : '';
    throw new InputError('', `${path} is not valid YAML${where}: ${(error as Error).message.split('\n')[0]}`);
  }
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    throw new InputError('', `${path} must hold a YAML mapping with cluster, node, vip and etcd`);
  }
  return resolveConfig(document);
}
