/**
 * Fuzzes the config loader: resolveConfig() with hostile documents and loadConfig() with
 * hostile YAML files. Every case must end in a Config or an InputError that names a field
 * (or the file), quickly, and an accepted Config must be one the agent can run with.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { loadConfig, resolveConfig, type Config } from '../../../src/config/config';
import { InputError } from '../../../src/config/schema-check';
import { Prng } from '../prng';
import { emptySummary, type FuzzRunOptions, type FuzzSummary } from './common';
import { deepValue, nastyString, preview, toJson, valueFor, wrongType } from './values';

type Flavour = Parameters<typeof valueFor>[1] | 'mode' | 'profile' | 'level' | 'endpoints' | 'object' | 'path';

const FIELDS: ReadonlyArray<readonly [string, Flavour]> = [
  ['cluster', 'name'],
  ['node', 'object'],
  ['node.name', 'name'],
  ['node.interface', 'string'],
  ['vip', 'object'],
  ['vip.mode', 'mode'],
  ['vip.address', 'ip'],
  ['vip.hwaddr', 'mac'],
  ['vip.dhcp', 'object'],
  ['vip.dhcp.releaseOnStop', 'boolean'],
  ['etcd', 'object'],
  ['etcd.endpoints', 'endpoints'],
  ['etcd.electionTimeout', 'duration'],
  ['etcd.tls', 'object'],
  ['etcd.tls.ca', 'path'],
  ['etcd.tls.cert', 'path'],
  ['etcd.tls.key', 'path'],
  ['election', 'object'],
  ['election.profile', 'profile'],
  ['election.leaseTTL', 'duration'],
  ['election.renewInterval', 'duration'],
  ['election.holdTimeout', 'duration'],
  ['election.fencingMargin', 'duration'],
  ['takeover.probeWindow', 'duration'],
  ['takeover.maxProbeWait', 'duration'],
  ['api.enabled', 'boolean'],
  ['api.port', 'number'],
  ['api.fqdn', 'string'],
  ['announce.burstCount', 'number'],
  ['announce.burstInterval', 'duration'],
  ['announce.refreshInterval', 'duration'],
  ['log.level', 'level'],
];

/** Node's timers hold at most 2^31 − 1 ms; a longer delay silently becomes 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** etcd refuses leases longer than this (lease.MaxLeaseTTL). */
const ETCD_MAX_LEASE_TTL_S = 9_000_000_000;

function baseDocument(rng: Prng): Record<string, unknown> {
  const doc: Record<string, unknown> = {
    cluster: 'lab',
    node: { name: 'node-1', interface: 'mgmt-br' },
    vip: rng.chance(0.8) ? { mode: 'static', address: rng.pick(['192.0.2.10', '2001:db8::10']) } : { mode: 'dhcp', address: '192.0.2.60', hwaddr: '02:00:00:09:7f:3f' },
    etcd: { endpoints: ['http://192.0.2.2:2379'] },
  };
  if (rng.chance(0.5)) doc['election'] = rng.chance(0.5) ? { profile: 'default', leaseTTL: '2s', renewInterval: '400ms' } : { profile: 'fast', holdTimeout: '200ms' };
  if (rng.chance(0.3)) doc['takeover'] = { probeWindow: '30ms', maxProbeWait: '3s' };
  if (rng.chance(0.3)) doc['api'] = { enabled: true, port: 443, fqdn: 'vip.example.test' };
  if (rng.chance(0.3)) doc['announce'] = { burstCount: 6, burstInterval: '300ms', refreshInterval: '10s' };
  if (rng.chance(0.3)) doc['log'] = { level: 'info' };
  return doc;
}

function fieldValue(rng: Prng, flavour: Flavour): unknown {
  switch (flavour) {
    case 'mode':
      return rng.chance(0.7) ? rng.pick(['static', 'dhcp', 'STATIC', 'Static', 'vrrp', '']) : wrongType(rng);
    case 'profile':
      return rng.chance(0.7) ? rng.pick(['default', 'fast', 'Fast', 'slow', '']) : wrongType(rng);
    case 'level':
      return rng.chance(0.7) ? rng.pick(['info', 'debug', 'trace', 'fatal', 'INFO', 'verbose', '']) : wrongType(rng);
    case 'endpoints': {
      if (rng.chance(0.3)) return wrongType(rng);
      const count = rng.pick([0, 1, 2, 3, 1000]);
      return Array.from({ length: count }, () => valueFor(rng, 'url'));
    }
    case 'object':
      return rng.chance(0.5) ? wrongType(rng) : { [nastyString(rng)]: wrongType(rng) };
    case 'path':
      return rng.chance(0.6)
        ? rng.pick(['/nonexistent/ca.pem', '', '.', '/', '/etc/passwd', '../../etc/shadow', 'relative.pem', '/tmp', `/proc/self/${'x'.repeat(300)}`])
        : wrongType(rng);
    default:
      return valueFor(rng, flavour);
  }
}

function setPath(doc: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cursor: Record<string, unknown> = doc;
  for (const part of parts.slice(0, -1)) {
    const next = cursor[part];
    if (!next || typeof next !== 'object' || Array.isArray(next)) cursor[part] = {};
    cursor = cursor[part] as Record<string, unknown>;
  }
  cursor[parts.at(-1)!] = value;
}

function deletePath(doc: Record<string, unknown>, path: string): void {
  const parts = path.split('.');
  let cursor: unknown = doc;
  for (const part of parts.slice(0, -1)) {
    cursor = (cursor as Record<string, unknown> | undefined)?.[part];
    if (!cursor || typeof cursor !== 'object') return;
  }
  delete (cursor as Record<string, unknown>)[parts.at(-1)!];
}

/** A hostile document: a valid one with one to three things wrong, or something else entirely. */
export function configDocument(rng: Prng): unknown {
  const roll = rng.next();
  if (roll < 0.03) return wrongType(rng);
  if (roll < 0.05) return deepValue(rng.pick([100, 1000, 20_000]), true);
  const doc = baseDocument(rng);
  if (roll < 0.08) {
    // Huge: many unknown keys, or one enormous value.
    if (rng.chance(0.5)) for (let i = 0; i < 5000; i += 1) doc[`key${i}`] = i;
    else doc['cluster'] = 'a'.repeat(rng.pick([10_000, 1_000_000]));
    return doc;
  }
  for (let changes = rng.int(1, 3); changes > 0; changes -= 1) {
    const [path, flavour] = rng.pick(FIELDS);
    const op = rng.next();
    if (op < 0.7) setPath(doc, path, fieldValue(rng, flavour));
    else if (op < 0.85) deletePath(doc, path);
    else setPath(doc, `${path.split('.')[0]}.${nastyString(rng).slice(0, 40) || 'x'}`, wrongType(rng));
  }
  return doc;
}

/** YAML text for a document, sometimes damaged on the way. */
export function configText(rng: Prng, doc: unknown): Buffer {
  let text: string;
  try {
    text = toYaml(doc, { aliasDuplicateObjects: false });
  } catch {
    // Too deep for the YAML library's recursion: JSON is YAML too.
    text = toJson(doc);
  }
  const roll = rng.next();
  if (roll < 0.6) return Buffer.from(text);
  if (roll < 0.65) return Buffer.from(Array.from({ length: rng.int(0, 2000) }, () => rng.int(0, 255)));
  if (roll < 0.7) return Buffer.from(`a: &a [x, x, x, x, x, x, x, x, x, x]\n${Array.from({ length: 12 }, (_, i) => `b${i}: &b${i} [${Array(10).fill(i ? `*b${i - 1}` : '*a').join(', ')}]`).join('\n')}\n${text}`);
  if (roll < 0.73) return Buffer.from(`${'['.repeat(rng.pick([1000, 50_000]))}${']'.repeat(rng.pick([0, 1000, 50_000]))}`);
  const damage = rng.int(0, 10);
  switch (damage) {
    case 0:
      return Buffer.from(text.slice(0, rng.int(0, text.length)));
    case 1:
      return Buffer.from(`\ufeff${text.replace(/\n/g, '\r\n')}`);
    case 2:
      return Buffer.from(text.replace(/^ {2}/gm, '\t'));
    case 3:
      return Buffer.from(`${text}---\n${text}`);
    case 4:
      return Buffer.from(`${text}cluster: other\n`);
    case 5:
      return Buffer.from(text.replace(/: /, ': !!binary '));
    case 6:
      return Buffer.from(text.replace(/: /, ': !custom '));
    case 7:
      return Buffer.concat([Buffer.from(text), Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28])]);
    case 8:
      return Buffer.from(`base: &base {interface: mgmt-br}\n${text.replace(/^node:.*$/m, 'node: {<<: *base, name: node-1}')}`);
    case 9: {
      const at = rng.int(0, text.length);
      return Buffer.from(`${text.slice(0, at)}${String.fromCharCode(rng.int(0, 0x7f))}${text.slice(at)}`);
    }
    default:
      return Buffer.from(text.replace(/:/g, rng.pick([' :', '::', '='])));
  }
}

/** Why an accepted config would misbehave in the agent, if it would. */
export function acceptedConfigProblems(config: Config): Array<{ kind: string; detail: string }> {
  const problems: Array<{ kind: string; detail: string }> = [];
  const durations: Record<string, number> = {
    'etcd.electionTimeout': config.etcd.electionTimeoutMs,
    'election.leaseTTL': config.election.leaseTtlSeconds * 1000,
    'election.renewInterval': config.election.renewIntervalMs,
    'election.holdTimeout': config.election.holdTimeoutMs,
    'election.fencingMargin': config.election.fencingMarginMs,
    'takeover.probeWindow': config.takeover.probeWindowMs,
    'takeover.maxProbeWait': config.takeover.maxProbeWaitMs,
    'announce.burstInterval': config.announce.burstIntervalMs,
    'announce.refreshInterval': config.announce.refreshIntervalMs,
  };
  // The ones the agent hands to setTimeout/setInterval (the others are only compared).
  const timers = ['election.leaseTTL', 'election.renewInterval', 'election.holdTimeout', 'announce.burstInterval', 'announce.refreshInterval'];
  for (const [field, ms] of Object.entries(durations)) {
    if (!Number.isFinite(ms) || ms < 0) problems.push({ kind: 'bad-duration', detail: `${field} resolved to ${ms} ms` });
    else if (ms > MAX_TIMER_MS && timers.includes(field)) {
      problems.push({ kind: 'timer-overflow', detail: `${field} = ${ms} ms is accepted, but Node's timers turn delays over 2^31-1 ms into 1 ms` });
    }
  }
  if (config.election.leaseTtlSeconds > ETCD_MAX_LEASE_TTL_S) {
    problems.push({ kind: 'lease-ttl-beyond-etcd', detail: `election.leaseTTL = ${config.election.leaseTtlSeconds}s exceeds etcd's maximum lease TTL` });
  }
  if (config.election.fencingMarginMs === 0) {
    problems.push({ kind: 'zero-fencing-margin', detail: 'election.fencingMargin resolved to 0 ms: no allowance for clock-rate drift or address removal' });
  }
  for (const endpoint of config.etcd.endpoints) {
    let port = 0;
    try {
      port = Number(new URL(endpoint).port || '0');
    } catch {
      problems.push({ kind: 'endpoint-not-a-url', detail: `etcd endpoint ${JSON.stringify(endpoint)} is accepted but is not a URL` });
      continue;
    }
    if (port > 65_535) problems.push({ kind: 'endpoint-bad-port', detail: `etcd endpoint ${JSON.stringify(endpoint)} is accepted with port ${port}` });
  }
  if (!Number.isInteger(config.api.port) || config.api.port < 1 || config.api.port > 65_535) {
    problems.push({ kind: 'bad-port', detail: `api.port resolved to ${config.api.port}` });
  }
  return problems;
}

/** What loading produced, wherever it ran. */
interface LoadOutcome {
  config: Config | null;
  error: { name: string; isInput: boolean; field: string | null; message: string; stack: string } | null;
  /** The process died (a fatal V8 error, a signal) or never finished. */
  died: string | null;
  tookMs: number;
}

const CONFIG_MODULE = join(__dirname, '..', '..', '..', 'src', 'config', 'config.js');
const CHILD_SCRIPT = `
const { loadConfig } = require(process.argv[1]);
let out;
try { out = { config: loadConfig(process.argv[2]) }; }
catch (e) { out = { error: { name: String(e && e.name), isInput: !!e && e.constructor && e.constructor.name === 'InputError', field: e && typeof e.field === 'string' ? e.field : null, message: String(e && e.message), stack: String(e && e.stack) } }; }
process.stdout.write(JSON.stringify(out));`;

/**
 * Big or deeply nested files are loaded in a process of their own, once, as `vipd` would:
 * the YAML parser's recursion can leave V8 in a state where the next deep parse aborts the
 * whole process, which says nothing about one real run.
 */
function loadInChild(path: string): LoadOutcome {
  const started = Date.now();
  const result = spawnSync(process.execPath, ['-e', CHILD_SCRIPT, CONFIG_MODULE, path], { encoding: 'utf8', timeout: HANG_MS, maxBuffer: 64 * 1024 * 1024 });
  const tookMs = Date.now() - started;
  if (result.error || result.status !== 0 || result.signal) {
    const why = result.error ? result.error.message : `exit ${result.status} signal ${result.signal}: ${result.stderr.split('\n').find((line) => /FATAL|Error/.test(line)) ?? result.stderr.slice(0, 200)}`;
    return { config: null, error: null, died: why, tookMs };
  }
  const parsed = JSON.parse(result.stdout) as { config?: Config; error?: LoadOutcome['error'] };
  return { config: parsed.config ?? null, error: parsed.error ?? null, died: null, tookMs };
}

function loadHere(load: () => Config): LoadOutcome {
  const started = Date.now();
  try {
    return { config: load(), error: null, died: null, tookMs: Date.now() - started };
  } catch (caught) {
    const error = caught as Error & { field?: unknown };
    return {
      config: null,
      error: { name: String(error?.name), isInput: caught instanceof InputError, field: typeof error?.field === 'string' ? error.field : null, message: String(error?.message), stack: String(error?.stack) },
      died: null,
      tookMs: Date.now() - started,
    };
  }
}

/** The error must be an InputError, name its field or file, and stay readable. */
function checkError(error: NonNullable<LoadOutcome['error']>, where: { path: string | null; rootIsObject: boolean }): { failure?: string; finding?: { kind: string; detail: string } } {
  if (!error.isInput) {
    return { failure: `threw ${error.name} instead of an InputError: ${error.message.slice(0, 300)}` };
  }
  if (!error.message.trim()) return { failure: 'an InputError with an empty message' };
  const named = (error.field ?? '') !== '' || (where.path !== null && error.message.includes(where.path)) || !where.rootIsObject;
  if (!named) return { failure: `the InputError names no field: ${error.message.slice(0, 300)}` };
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(error.message)) {
    return { finding: { kind: 'control-characters-in-message', detail: `the message carries raw control characters: ${preview(error.message, 120)}` } };
  }
  if (error.message.length > 2000) {
    return { finding: { kind: 'message-echoes-input', detail: `the message is ${error.message.length} characters: it repeats the whole bad value` } };
  }
  return {};
}

/**
 * Slower than SLOW_MS is a note (the machine may be busy); past HANG_MS, the deadline a
 * heavy case's own process also gets, a failure: the loader hung.
 */
const SLOW_MS = 2000;
const HANG_MS = 60_000;

/** Runs `cases` config cases from `seed`; resolveConfig and loadConfig alternate. */
export async function fuzzConfig(options: FuzzRunOptions): Promise<FuzzSummary> {
  const summary = emptySummary('config', options.seed);
  const started = Date.now();
  const root = new Prng(options.seed).fork('config');
  const dir = mkdtempSync(join(tmpdir(), 'vipd-fuzz-config-'));
  // The YAML library reports what it could not make sense of (unknown tags, directives) as
  // process warnings and carries on: a config accepted that way is a finding.
  let yamlWarnings: string[] = [];
  const onWarning = (warning: Error) => {
    if (warning.name === 'YAMLWarning') yamlWarnings.push(warning.message.split('\n')[0]!);
  };
  // Node prints every warning by default: thousands of them would bury the report.
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', onWarning);
  try {
    const first = options.first ?? 0;
    for (let index = first; index < first + options.cases; index += 1) {
      const rng = root.fork(index);
      const doc = configDocument(rng);
      const viaFile = rng.chance(0.5);
      const path = viaFile ? join(dir, `case-${index}.yaml`) : null;
      let input: string;
      let heavy = false;
      if (path) {
        const bytes = configText(rng, doc);
        writeFileSync(path, bytes, { mode: 0o600 });
        heavy = bytes.length > 200_000 || /[[{]{200}/.test(bytes.toString('latin1', 0, 4096));
        input = `loadConfig(file of ${bytes.length} bytes: ${preview(bytes.toString('utf8'), 200)})`;
      } else {
        input = `resolveConfig(${preview(doc, 300)})`;
      }
      const outcome = path ? (heavy ? loadInChild(path) : loadHere(() => loadConfig(path))) : loadHere(() => resolveConfig(doc));
      // Process warnings are delivered on a later tick: let them arrive before judging.
      await new Promise((resolve) => setImmediate(resolve));
      summary.cases += 1;
      const record = (problem: string) => summary.failures.push({ target: 'config', seed: options.seed, index, input, problem });
      const note = (kind: string, detail: string) => summary.findings.push({ target: 'config', seed: options.seed, index, input, kind, detail });
      if (outcome.tookMs > HANG_MS) record(`took ${outcome.tookMs} ms`);
      else if (outcome.tookMs > SLOW_MS) summary.notes.push({ target: 'config', seed: options.seed, index, input, kind: 'slow-input', detail: `took ${outcome.tookMs} ms${heavy ? ' (in a process of its own, start-up included)' : ''}` });
      if (outcome.died) {
        summary.rejected += 1;
        record(`the process died: ${outcome.died}`);
      } else if (outcome.config) {
        summary.accepted += 1;
        for (const problem of acceptedConfigProblems(outcome.config)) note(problem.kind, problem.detail);
        if (yamlWarnings.length > 0) note('yaml-warning-ignored', `accepted although the YAML parser warned: ${yamlWarnings[0]}`);
      } else {
        summary.rejected += 1;
        const rootIsObject = path !== null || (doc !== null && typeof doc === 'object' && !Array.isArray(doc));
        const verdict = checkError(outcome.error!, { path, rootIsObject });
        if (verdict.failure) record(verdict.failure);
        if (verdict.finding) note(verdict.finding.kind, verdict.finding.detail);
      }
      if (path) rmSync(path, { force: true });
      yamlWarnings = [];
      options.progress?.(index);
    }
  } finally {
    process.removeListener('warning', onWarning);
    for (const printer of printers) process.on('warning', printer);
    rmSync(dir, { recursive: true, force: true });
  }
  summary.ms = Date.now() - started;
  return summary;
}
