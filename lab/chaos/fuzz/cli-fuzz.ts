/**
 * Fuzzes the CLI's arguments: buildProgram() from src/main.ts, parsed in-process with every
 * subcommand's output captured, and a subset through the real `vipd` binary for its exit
 * codes. Every case must end in a commander error, an InputError naming the flag or field,
 * or (for well-formed requests) "cannot reach" — never another exception, never a hang.
 *
 * Nothing here reaches past loopback: --server URLs that would connect are pointed at
 * 127.0.0.1:9, where nothing listens, and config files name etcd at http://127.0.0.1:9.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommanderError, type Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import { buildProgram } from '../../../src/main';
import { InputError } from '../../../src/config/schema-check';
import { ApiError } from '../../../src/cli/api-client';
import { Prng } from '../prng';
import { emptySummary, type FuzzRunOptions, type FuzzSummary } from './common';
import { duration, nastyString, preview } from './values';

/** Files the cases point --config, --ca and the like at; made once per run. */
export interface CliFixtures {
  dir: string;
  /** A valid config whose etcd is 127.0.0.1:9 (nothing listens): commands fail as "unreachable". */
  unreachable: string;
  /** Valid YAML, invalid config. */
  invalid: string;
  /** Not YAML at all. */
  garbage: string;
  /** Mode 0666: refused before it is read. */
  worldWritable: string;
  /** A PEM that is not a CA. */
  notPem: string;
  missing: string;
}

export function createCliFixtures(): CliFixtures {
  const dir = mkdtempSync(join(tmpdir(), 'vipd-fuzz-cli-'));
  const base = {
    cluster: 'fuzz',
    node: { name: 'node-1', interface: 'mgmt-br' },
    vip: { mode: 'static', address: '192.0.2.10' },
    etcd: { endpoints: ['http://127.0.0.1:9'] },
  };
  const write = (name: string, text: string, mode = 0o600): string => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode });
    return path;
  };
  const fixtures: CliFixtures = {
    dir,
    unreachable: write('unreachable.yaml', toYaml(base)),
    invalid: write('invalid.yaml', toYaml({ ...base, vip: { mode: 'static', address: '256.0.0.1' } })),
    garbage: write('garbage.yaml', '{{{ not: yaml ]]'),
    worldWritable: write('world-writable.yaml', toYaml(base), 0o666),
    notPem: write('not-a-ca.pem', 'hello'),
    missing: join(dir, 'missing.yaml'),
  };
  // writeFileSync's mode is filtered by the umask; make sure this one really is 0666.
  chmodSync(fixtures.worldWritable, 0o666);
  return fixtures;
}

/** Subcommands and the flags each takes, with value generators. */
type FlagValue = (rng: Prng, fixtures: CliFixtures) => string;

const configPath: FlagValue = (rng, f) =>
  rng.weighted<string>([
    [f.missing, 3],
    [f.invalid, 3],
    [f.garbage, 2],
    [f.worldWritable, 2],
    [f.dir, 1],
    [f.unreachable, 1],
    ['', 1],
    [nastyString(rng).slice(0, 200), 2],
  ]);
const anyText: FlagValue = (rng) => nastyString(rng).slice(0, 5000);
const output: FlagValue = (rng) =>
  rng.pick(['json', 'yaml', 'table', '', 'xml', 'JSON', 'jsonpath=', 'jsonpath={', 'jsonpath={.status.holder}', 'jsonpath={range .x[*]}{end}', 'jsonpath={.a.b.c.d[?(@.x=="y")]}', `jsonpath=${nastyString(rng)}`, 'go-template={{.}}']);
const serverUrl: FlagValue = (rng) =>
  rng.pick(['https://127.0.0.1:9', 'https://[::1]:9', 'http://127.0.0.1:9', 'https://127.0.0.1:9/path', 'https://user:pw@127.0.0.1:9', 'https://127.0.0.1:9?x=1', 'not a url', '', 'https://', 'ftp://127.0.0.1', nastyString(rng)]);
const fingerprint: FlagValue = (rng) =>
  rng.pick(['AB'.repeat(32), 'ab:'.repeat(31) + 'ab', 'sha256:' + 'AB'.repeat(32), 'AB'.repeat(31), 'ZZ'.repeat(32), '', nastyString(rng)]);
const role: FlagValue = (rng) => rng.pick(['read', 'admin', 'Admin', 'root', '', 'read,admin', nastyString(rng)]);
const ttl: FlagValue = (rng) => rng.pick(['30m', '24h', '7d', 'never', '0h', '-1h', '1y', '9999999d', '1000000m', '', duration(rng), nastyString(rng)]);
const nodeName: FlagValue = (rng) => rng.pick(['node-2', 'Node-2', '', '-x', 'a'.repeat(64), '../etc', nastyString(rng)]);
const timeout: FlagValue = (rng) => rng.pick(['10000', '0', '-1', '99', '1e3', 'abc', '', '9'.repeat(30)]);
const tokenId: FlagValue = (rng) => rng.pick(['0123456789abcdef', 'x', '', '../../..', nastyString(rng)]);

interface CommandSpec {
  path: string[];
  flags: Record<string, FlagValue>;
  positional?: FlagValue;
  /** Never run with a config that passes: it would start an agent or probe the network. */
  onlyBadConfig?: boolean;
}

const COMMANDS: CommandSpec[] = [
  { path: ['run'], flags: { '--config': configPath, '-c': configPath }, onlyBadConfig: true },
  { path: ['doctor'], flags: { '--config': configPath, '-o': output }, onlyBadConfig: true },
  { path: ['status'], flags: { '--config': configPath, '-o': output, '--server': serverUrl, '--token': anyText, '--ca': configPath, '--ca-fingerprint': fingerprint } },
  { path: ['move'], flags: { '--to': nodeName, '--config': configPath, '--timeout': timeout, '--server': serverUrl, '--token': anyText, '--ca-fingerprint': fingerprint } },
  { path: ['dhcp', 'reservation'], flags: { '--config': configPath, '-o': output } },
  { path: ['token', 'create'], flags: { '--role': role, '--ttl': ttl, '--description': anyText, '--config': configPath } },
  { path: ['token', 'list'], flags: { '-o': output, '--config': configPath } },
  { path: ['token', 'delete'], flags: { '--config': configPath }, positional: tokenId },
  { path: ['ca'], flags: { '--config': configPath } },
  { path: ['frobnicate'], flags: { '--config': configPath } },
  { path: [], flags: { '--version': () => '', '--help': () => '' } },
];

/** One argv (without node and script): a command, some flags with hostile values, junk. */
export function cliArguments(rng: Prng, fixtures: CliFixtures): string[] {
  const spec = rng.pick(COMMANDS);
  const args = [...spec.path];
  const flags = Object.keys(spec.flags);
  for (let count = rng.int(0, flags.length + 1); count > 0; count -= 1) {
    const roll = rng.next();
    if (roll < 0.75 && flags.length > 0) {
      const flag = rng.pick(flags);
      const value = spec.flags[flag]!(rng, fixtures);
      if (rng.chance(0.1)) args.push(`${flag}=${value}`);
      else if (rng.chance(0.05)) args.push(flag);
      else args.push(flag, value);
    } else if (roll < 0.85) {
      args.push(rng.pick(['--', '-', '--unknown', '-x', '--config', '-o', '--help', '-h', '-V', '-cz']));
    } else {
      args.push(nastyString(rng).slice(0, 300));
    }
  }
  if (spec.positional && rng.chance(0.8)) args.push(spec.positional(rng, fixtures));
  if (spec.onlyBadConfig) {
    // Whatever came out, never hand run/doctor a config they could act on.
    for (let i = 0; i < args.length; i += 1) if (args[i] === fixtures.unreachable) args[i] = fixtures.invalid;
  }
  return args.map((arg) => (arg.includes('\u0000') ? arg.replace(/\u0000/g, '') : arg));
}

/**
 * Anything that would open a connection goes to 127.0.0.1:9 instead, and a move through the
 * API gives up after 100 ms (it retries until --timeout, 10 s by default, by design).
 */
function loopbackOnly(args: string[]): string[] {
  const safe = rewriteServers(args);
  return safe[0] === 'move' && safe.some((arg) => arg === '--server' || arg.startsWith('--server=')) ? [...safe, '--timeout', '100'] : safe;
}

function rewriteServers(args: string[]): string[] {
  return args.map((arg, i) => {
    const flagged = args[i - 1] === '--server' ? arg : arg.startsWith('--server=') ? arg.slice('--server='.length) : null;
    if (flagged === null) return arg;
    let url: URL;
    try {
      url = new URL(flagged);
    } catch {
      return arg;
    }
    if (url.protocol !== 'https:' || url.pathname !== '/' || url.search || url.username || url.password) return arg;
    const safe = url.hostname === '[::1]' ? 'https://[::1]:9' : 'https://127.0.0.1:9';
    return args[i - 1] === '--server' ? safe : `--server=${safe}`;
  });
}

function configureQuietly(command: Command, sink: { out: string; err: string }): void {
  command.configureOutput({
    writeOut: (text) => void (sink.out += text),
    writeErr: (text) => void (sink.err += text),
    outputError: (text, write) => write(text),
  });
  command.exitOverride();
  for (const sub of command.commands) configureQuietly(sub, sink);
}

/** Errors that mean "well-formed, but nothing answers" (etcd or the API at 127.0.0.1:9). */
function isUnavailable(error: unknown): boolean {
  if (error instanceof ApiError) return true;
  const code = (error as NodeJS.ErrnoException)?.code ?? '';
  const message = (error as Error)?.message ?? '';
  return ['ECONNREFUSED', 'ECONNRESET', 'EADDRNOTAVAIL', 'ETIMEDOUT'].includes(code) || /no answer from|no TLS answer|ECONNREFUSED|did not take the VIP/.test(message);
}

export interface CliOutcome {
  kind: 'ok' | 'commander' | 'input' | 'unavailable' | 'crash' | 'hang';
  detail: string;
  stdout: string;
  stderr: string;
  exitCode: number | undefined;
}

/** Runs one argv through buildProgram() in this process, with stdout and stderr captured. */
export async function runInProcess(args: string[], timeoutMs = 15_000): Promise<CliOutcome> {
  const sink = { out: '', err: '' };
  const program = buildProgram();
  configureQuietly(program, sink);
  const realOut = process.stdout.write.bind(process.stdout);
  const realErr = process.stderr.write.bind(process.stderr);
  const previousExitCode = process.exitCode;
  process.exitCode = undefined;
  process.stdout.write = ((chunk: string | Uint8Array) => ((sink.out += chunk.toString()), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((sink.err += chunk.toString()), true)) as typeof process.stderr.write;
  let timer: NodeJS.Timeout | undefined;
  try {
    const hang = new Promise<'hang'>((resolve) => (timer = setTimeout(() => resolve('hang'), timeoutMs)));
    const outcome = await Promise.race([program.parseAsync(['node', 'vipd', ...args]).then(() => 'ok' as const), hang]).catch((error: unknown) => error);
    const exitCode = typeof process.exitCode === 'number' ? process.exitCode : undefined;
    const base = { stdout: sink.out, stderr: sink.err, exitCode };
    if (outcome === 'hang') return { kind: 'hang', detail: `no result within ${timeoutMs} ms`, ...base };
    if (outcome === 'ok') return { kind: 'ok', detail: '', ...base };
    if (outcome instanceof CommanderError) return { kind: 'commander', detail: `${outcome.code}: ${outcome.message}`, ...base };
    if (outcome instanceof InputError) return { kind: 'input', detail: outcome.message, ...base };
    if (isUnavailable(outcome)) return { kind: 'unavailable', detail: (outcome as Error).message, ...base };
    return { kind: 'crash', detail: `${(outcome as Error)?.name}: ${(outcome as Error)?.stack ?? String(outcome)}`.slice(0, 800), ...base };
  } finally {
    clearTimeout(timer);
    process.stdout.write = realOut;
    process.stderr.write = realErr;
    process.exitCode = previousExitCode;
  }
}

/** Runs one argv through the built `vipd` binary. */
export function runBinary(cliPath: string, args: string[], timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string; hung: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VIPD_TOKEN: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, hung });
    });
  });
}

/** An InputError must start with the flag or field at fault, or name the file it read. */
function namesItsInput(message: string, args: string[]): boolean {
  if (/^(-{1,2}[a-z-]+|[a-z][A-Za-z.[\]0-9]*): /.test(message)) return true;
  // Flags given as --flag=VALUE name their value after the '='.
  const values = args.flatMap((arg) => (arg.startsWith('-') && arg.includes('=') ? [arg, arg.slice(arg.indexOf('=') + 1)] : [arg]));
  return values.some((value) => value.length >= 2 && message.includes(value));
}

function inputFor(args: string[]): string {
  return preview(args, 400);
}

/**
 * Runs `cases` in-process cases and `binaryCases` through the binary at `cliPath`
 * (dist/src/main.js), from `seed`.
 */
export async function fuzzCli(options: FuzzRunOptions & { binaryCases?: number; cliPath?: string }): Promise<FuzzSummary> {
  const summary = emptySummary('cli', options.seed);
  const started = Date.now();
  const root = new Prng(options.seed).fork('cli');
  const fixtures = createCliFixtures();
  try {
    const first = options.first ?? 0;
    for (let index = first; index < first + options.cases; index += 1) {
      const rng = root.fork(index);
      const args = loopbackOnly(cliArguments(rng, fixtures));
      const input = inputFor(args);
      const outcome = await runInProcess(args);
      summary.cases += 1;
      const fail = (problem: string) => summary.failures.push({ target: 'cli', seed: options.seed, index, input, problem });
      if (outcome.kind === 'crash') fail(`threw instead of a clear error: ${outcome.detail}`);
      else if (outcome.kind === 'hang') fail(outcome.detail);
      else if (outcome.kind === 'input' && !namesItsInput(outcome.detail, args)) {
        fail(`the InputError names no flag or field: ${outcome.detail.slice(0, 300)}`);
      } else if (outcome.kind === 'commander' && !/^commander\.(helpDisplayed|version|help)/.test(outcome.detail) && !outcome.stderr.trim()) {
        fail(`commander refused it without saying why: ${outcome.detail}`);
      }
      if (outcome.kind === 'ok' || (outcome.kind === 'commander' && /helpDisplayed|version/.test(outcome.detail))) summary.accepted += 1;
      else summary.rejected += 1;
      options.progress?.(index);
    }
    const binaryCases = options.binaryCases ?? 0;
    if (binaryCases > 0 && options.cliPath) {
      const binaryRoot = new Prng(options.seed).fork('cli-binary');
      for (let index = 0; index < binaryCases; index += 1) {
        const args = loopbackOnly(cliArguments(binaryRoot.fork(index), fixtures));
        const input = `vipd ${inputFor(args)} (binary case ${index})`;
        const result = await runBinary(options.cliPath, args);
        summary.cases += 1;
        const fail = (problem: string) => summary.failures.push({ target: 'cli', seed: options.seed, index: -1 - index, input, problem });
        if (result.hung) fail('the process did not exit within 30 s');
        else if (result.code === 2 || result.code === 0) {
          // Bad input (or help): one clear message, no stack trace.
          if (/\n\s+at .+\(.+:\d+:\d+\)/.test(result.stderr)) fail(`exit ${result.code} with a stack trace: ${result.stderr.slice(0, 400)}`);
          if (result.code === 2 && !result.stderr.trim()) fail('exit 2 without a message');
        } else if (result.code === 1) {
          if (!/cannot reach|ECONNREFUSED|no answer|unreachable|did not take/i.test(result.stderr)) fail(`exit 1 that is not about reaching etcd or the API: ${result.stderr.slice(0, 400)}`);
        } else {
          fail(`exit code ${result.code}: ${result.stderr.slice(0, 400)}`);
        }
        if (result.code === 0) summary.accepted += 1;
        else summary.rejected += 1;
        options.progress?.(first + options.cases + index);
      }
    }
  } finally {
    rmSync(fixtures.dir, { recursive: true, force: true });
  }
  summary.ms = Date.now() - started;
  return summary;
}
