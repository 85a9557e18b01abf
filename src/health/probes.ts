/** One probe of one check: an HTTP(S) GET, a TCP connect or a command. Never blocks the event loop. */
import { spawn } from 'node:child_process';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { monotonicMs } from '../clock';
import type { HealthProbeConfig } from '../config/health';
import { checkCommand, readCa } from '../config/referenced-files';

/** A command's output is kept this short: it goes to the event history and status. */
export const MAX_OUTPUT_CHARS = 256;

export interface ProbeResult {
  ok: boolean;
  /** One line: "HTTP 503", "connection refused", "exit code 1", "timed out after 500ms and was killed". */
  detail: string;
  /** A command's output (stdout then stderr), cut to MAX_OUTPUT_CHARS. */
  output: string;
  durationMs: number;
}

/** A probe ready to run, its files read once at start-up. */
export type Probe = (timeoutMs: number, signal?: AbortSignal) => Promise<ProbeResult>;

/** Builds the probe for a check; throws InputError (exit 2) when a file it names is unusable. */
export function buildProbe(config: HealthProbeConfig, field: string): Probe {
  switch (config.kind) {
    case 'http': {
      const ca = config.ca === null ? null : readCa(config.ca, `${field}.ca`);
      return (timeoutMs, signal) => httpProbe(config, ca, timeoutMs, signal);
    }
    case 'tcp':
      return (timeoutMs, signal) => tcpProbe(config.host, config.port, timeoutMs, signal);
    case 'command':
      checkCommand(config.argv[0]!, `${field}.command[0]`);
      return (timeoutMs, signal) => commandProbe(config.argv, timeoutMs, signal);
  }
}

function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim().slice(0, 200);
}

/** Runs `start` and settles once: with its answer, at the timeout, or on abort. */
function bounded(
  timeoutMs: number,
  signal: AbortSignal | undefined,
  start: (finish: (ok: boolean, detail: string) => void, collected: { output: string }) => () => void,
  timeoutDetail = `no answer within ${timeoutMs}ms`,
): Promise<ProbeResult> {
  const started = monotonicMs();
  return new Promise((resolve) => {
    let settled = false;
    let cleanup: () => void = () => undefined;
    const collected = { output: '' };
    const finish = (ok: boolean, detail: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      cleanup();
      resolve({ ok, detail: oneLine(detail), output: collected.output.slice(0, MAX_OUTPUT_CHARS), durationMs: monotonicMs() - started });
    };
    const timer = setTimeout(() => finish(false, timeoutDetail), timeoutMs);
    const onAbort = (): void => finish(false, 'stopped: the agent is shutting down');
    signal?.addEventListener('abort', onAbort, { once: true });
    cleanup = start(finish, collected);
    if (settled) cleanup();
  });
}

function statusExpected(status: number, ranges: Array<[number, number]>): boolean {
  return ranges.some(([low, high]) => status >= low && status <= high);
}

const MAX_BODY_BYTES = 64 * 1024;

function httpProbe(config: Extract<HealthProbeConfig, { kind: 'http' }>, ca: string | null, timeoutMs: number, signal?: AbortSignal): Promise<ProbeResult> {
  const target = new URL(config.url);
  return bounded(timeoutMs, signal, (finish) => {
    const options = {
      method: 'GET',
      headers: { 'user-agent': 'vipd-health', ...config.headers },
      // A fresh connection each time: a pooled one could hide a server that stopped accepting.
      agent: false as const,
      ...(ca !== null ? { ca } : {}),
      ...(config.insecureSkipVerify ? { rejectUnauthorized: false } : {}),
    };
    let received = 0;
    const onResponse = (answer: IncomingMessage): void => {
      const status = answer.statusCode ?? 0;
      // The status decides; the body is drained (bounded) so the server sees a clean close.
      answer.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > MAX_BODY_BYTES) finish(statusExpected(status, config.expectedStatus), `HTTP ${status}`);
      });
      answer.on('error', () => undefined);
      answer.on('end', () => finish(statusExpected(status, config.expectedStatus), `HTTP ${status}`));
    };
    const request: ClientRequest = target.protocol === 'https:' ? httpsRequest(target, options, onResponse) : httpRequest(target, options, onResponse);
    request.on('error', (error: NodeJS.ErrnoException) => finish(false, describeNetError(error)));
    request.end();
    return () => request.destroy();
  });
}

function describeNetError(error: NodeJS.ErrnoException): string {
  if (error.code === 'ECONNREFUSED') return 'connection refused';
  if (error.code === 'ECONNRESET') return 'connection reset';
  if (error.code === 'EHOSTUNREACH' || error.code === 'ENETUNREACH') return 'host unreachable';
  return error.code ? `${error.code}: ${error.message}` : error.message;
}

function tcpProbe(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<ProbeResult> {
  return bounded(timeoutMs, signal, (finish) => {
    const socket = connect({ host, port });
    socket.once('connect', () => finish(true, 'connected'));
    socket.once('error', (error: NodeJS.ErrnoException) => finish(false, describeNetError(error)));
    return () => socket.destroy();
  });
}

/**
 * Runs argv without a shell in its own process group; at the timeout (or on abort) the
 * group is killed with SIGKILL, so a hung script and its children go, and the probe fails.
 */
function commandProbe(argv: string[], timeoutMs: number, signal?: AbortSignal): Promise<ProbeResult> {
  return bounded(
    timeoutMs,
    signal,
    (finish, collected) => {
      const keep = (chunk: Buffer): void => {
        if (collected.output.length < MAX_OUTPUT_CHARS) collected.output += chunk.toString('utf8', 0, Math.min(chunk.length, MAX_OUTPUT_CHARS));
      };
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);
      child.once('error', (error) => finish(false, `could not run ${argv[0]}: ${error.message}`));
      let grace: NodeJS.Timeout | undefined;
      child.once('exit', (code, exitSignal) => {
        const report = (): void => {
          if (code === 0) finish(true, 'exit code 0');
          else finish(false, code !== null ? `exit code ${code}` : `killed by ${exitSignal}`);
        };
        // The rest of the output follows the exit; a background child holding the pipes must not make the probe wait.
        grace = setTimeout(report, 100);
        child.once('close', report);
      });
      return () => {
        clearTimeout(grace);
        child.stdout?.destroy();
        child.stderr?.destroy();
        if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      };
    },
    `timed out after ${timeoutMs}ms and was killed`,
  );
}
