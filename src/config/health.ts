import { Type, type Static } from '@sinclair/typebox';
import { isIP } from 'node:net';
import { InputError } from './schema-check';

/** Health checks (issue 13): the node may hold the VIP only while they pass. Names follow the issue, so configs stay portable. */

const Duration = (description: string) =>
  Type.String({
    pattern: '^[0-9]+(\\.[0-9]+)?(ms|s|m)$',
    description: `a duration with a unit, like 400ms, 2s or 1m (${description})`,
  });

const StatusRange = Type.Union(
  [
    Type.Integer({ minimum: 100, maximum: 599 }),
    Type.String({ pattern: '^[1-5][0-9][0-9]-[1-5][0-9][0-9]$' }),
  ],
  { description: 'an HTTP status code like 200 or a range like 200-399' },
);

const CheckSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$', description: 'a check name of lowercase letters, digits and "-", at most 63' }),
    http: Type.Optional(Type.String({ pattern: '^https?://\\S+$', description: 'an http:// or https:// URL like https://127.0.0.1:6443/readyz' })),
    tcp: Type.Optional(Type.String({ pattern: '^\\S+:[0-9]{1,5}$', description: 'a host:port like 127.0.0.1:443 or [::1]:443' })),
    command: Type.Optional(
      Type.Array(Type.String({ minLength: 1, description: 'a non-empty argument' }), {
        minItems: 1,
        description: 'an argv list like ["/usr/bin/systemctl", "is-active", "rke2-server"] (run without a shell)',
      }),
    ),
    interval: Type.Optional(Duration('how often the check runs, default 1s')),
    timeout: Type.Optional(Duration('a probe slower than this fails, default the interval')),
    fall: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'a whole number from 1 to 100' })),
    rise: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'a whole number from 1 to 100' })),
    expectedStatus: Type.Optional(Type.Array(StatusRange, { minItems: 1, maxItems: 32, description: 'a list of status codes or ranges, default [200-399]' })),
    ca: Type.Optional(Type.String({ minLength: 1, description: 'a path to the CA bundle (PEM) that signed the checked server' })),
    insecureSkipVerify: Type.Optional(Type.Boolean({ description: 'true or false' })),
    // Values are not checked by pattern: a schema error would print them, and they are often secrets.
    headers: Type.Optional(
      Type.Record(Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" }), Type.String(), { description: 'a map of HTTP header names to values' }),
    ),
  },
  { additionalProperties: false },
);

export const HealthSchema = Type.Object(
  { checks: Type.Optional(Type.Array(CheckSchema, { maxItems: 16, description: 'a list of at most 16 checks' })) },
  { additionalProperties: false },
);

export type HealthFile = Static<typeof HealthSchema>;

export type HealthProbeConfig =
  | {
      kind: 'http';
      url: string;
      /** Inclusive ranges; a status in any of them passes. */
      expectedStatus: Array<[number, number]>;
      ca: string | null;
      insecureSkipVerify: boolean;
      headers: Record<string, string>;
    }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'command'; argv: string[] };

export interface HealthCheckConfig {
  name: string;
  /** The dotted config path (health.checks[0]). */
  field: string;
  probe: HealthProbeConfig;
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive failures that make a passing check fail. */
  fall: number;
  /** Consecutive successes that make a failing check pass. */
  rise: number;
}

export interface HealthConfig {
  checks: HealthCheckConfig[];
}

/** What a check's target is, for status and logs: never a URL's query or a header. */
export function describeProbe(probe: HealthProbeConfig): string {
  switch (probe.kind) {
    case 'http': {
      const url = new URL(probe.url);
      return `${url.origin}${url.pathname}`;
    }
    case 'tcp':
      return `tcp ${probe.host.includes(':') ? `[${probe.host}]` : probe.host}:${probe.port}`;
    case 'command':
      return probe.argv[0]!;
  }
}

function parseStatus(entry: number | string, field: string): [number, number] {
  if (typeof entry === 'number') return [entry, entry];
  const [low, high] = entry.split('-').map(Number) as [number, number];
  if (low > high) throw new InputError(field, `"${entry}" is an empty range: the first code must not exceed the second`);
  return [low, high];
}

function resolveTcp(target: string, field: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):([0-9]{1,5})$/.exec(target);
  if (!match) throw new InputError(field, `"${target.slice(0, 80)}" is not a host:port like 127.0.0.1:443 or [::1]:443`);
  const host = match[1] ?? match[2]!;
  if (match[1] !== undefined && isIP(host) !== 6) throw new InputError(field, `${host} is not an IPv6 address`);
  const port = Number(match[3]);
  if (port < 1 || port > 65535) throw new InputError(field, `port ${port} is not between 1 and 65535`);
  return { host, port };
}

type CheckFile = NonNullable<HealthFile['checks']>[number];

function resolveCheck(check: CheckFile, field: string, parseDuration: (text: string, field: string) => number): HealthCheckConfig {
  const kinds = (['http', 'tcp', 'command'] as const).filter((kind) => check[kind] !== undefined);
  if (kinds.length !== 1) throw new InputError(field, `needs exactly one of http, tcp or command${kinds.length ? ` (got ${kinds.join(' and ')})` : ''}`);
  let probe: HealthProbeConfig;
  if (check.http !== undefined) {
    let url: URL;
    try {
      url = new URL(check.http);
    } catch {
      throw new InputError(`${field}.http`, `"${check.http.slice(0, 80)}" is not a valid URL`);
    }
    if (url.username || url.password) throw new InputError(`${field}.http`, 'must not carry credentials: put them in headers');
    if (url.port !== '' && (Number(url.port) < 1 || Number(url.port) > 65535)) throw new InputError(`${field}.http`, `port ${url.port} is not between 1 and 65535`);
    const https = url.protocol === 'https:';
    if (!https && check.ca !== undefined) throw new InputError(`${field}.ca`, 'applies to https:// URLs only');
    if (!https && check.insecureSkipVerify !== undefined) throw new InputError(`${field}.insecureSkipVerify`, 'applies to https:// URLs only');
    if (check.ca !== undefined && check.insecureSkipVerify) throw new InputError(`${field}.insecureSkipVerify`, 'cannot be combined with ca: pick one');
    for (const [header, value] of Object.entries(check.headers ?? {})) {
      if (/[\r\n\0]/.test(value)) throw new InputError(`${field}.headers.${header}`, 'must not contain line breaks or NUL');
    }
    const expectedStatus = (check.expectedStatus ?? ['200-399']).map((entry, index) => parseStatus(entry, `${field}.expectedStatus[${index}]`));
    probe = { kind: 'http', url: url.href, expectedStatus, ca: check.ca ?? null, insecureSkipVerify: check.insecureSkipVerify ?? false, headers: { ...check.headers } };
  } else {
    for (const option of ['expectedStatus', 'ca', 'insecureSkipVerify', 'headers'] as const) {
      if (check[option] !== undefined) throw new InputError(`${field}.${option}`, 'applies to http checks only');
    }
    if (check.tcp !== undefined) {
      probe = { kind: 'tcp', ...resolveTcp(check.tcp, `${field}.tcp`) };
    } else {
      const argv = check.command!;
      if (!argv[0]!.startsWith('/')) throw new InputError(`${field}.command[0]`, 'must be an absolute path (checks run without a shell and without PATH lookup)');
      probe = { kind: 'command', argv: [...argv] };
    }
  }
  const intervalMs = parseDuration(check.interval ?? '1s', `${field}.interval`);
  if (intervalMs < 100 || intervalMs > 300_000) throw new InputError(`${field}.interval`, 'must be from 100ms to 5m');
  const timeoutMs = check.timeout === undefined ? intervalMs : parseDuration(check.timeout, `${field}.timeout`);
  if (timeoutMs < 10) throw new InputError(`${field}.timeout`, 'must be at least 10ms');
  if (timeoutMs > intervalMs) throw new InputError(`${field}.timeout`, `must not exceed the interval (${intervalMs}ms): probes of one check never overlap`);
  return { name: check.name, field, probe, intervalMs, timeoutMs, fall: check.fall ?? 3, rise: check.rise ?? 2 };
}

/** Checks the health section and fills in defaults; throws InputError naming the field. */
export function resolveHealth(file: HealthFile | undefined, parseDuration: (text: string, field: string) => number): HealthConfig {
  const checks = (file?.checks ?? []).map((check, index) => resolveCheck(check, `health.checks[${index}]`, parseDuration));
  const seen = new Set<string>();
  checks.forEach((check) => {
    if (seen.has(check.name)) throw new InputError(`${check.field}.name`, `"${check.name}" is used by another check: names must be unique`);
    seen.add(check.name);
  });
  return { checks };
}
