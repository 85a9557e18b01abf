/**
 * Hooks: user commands and webhooks run when the VIP comes to this node (acquire), leaves
 * it on purpose (release) or is lost (fault). They run in the background, never in the
 * agent's reconcile loop or the election: a slow or hanging hook cannot delay fencing.
 */
import type { AttemptFailure, HookAttemptRecord, HookFailureRecord, HookRunRecord, TransitionCause } from '../store/records';
import type { HookHistory } from '../store/hook-history';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Logger } from 'pino';
import type { HookConfig, HookEvent } from '../config/config';
import { InputError } from '../config/schema-check';
import { monotonicMs } from '../clock';



/** Causes where the node lost the VIP without choosing to. */
const FAULT_CAUSES: ReadonlySet<TransitionCause> = new Set(['fenced', 'lease_lost', 'dhcp_lost']);

export function hookEventOf(cause: TransitionCause): HookEvent {
  if (cause === 'acquired') return 'acquire';
  return FAULT_CAUSES.has(cause) ? 'fault' : 'release';
}

/** Everything a hook is told about one transition. */
export interface HookContext {
  event: HookEvent;
  cause: TransitionCause;
  reason: string;
  vip: string;
  node: string;
  nodeIP: string;
  mac: string;
  term: number | null;
  previousHolder: string | null;
  cluster: string;
  time: string;
}

/** The environment a hook command gets on top of the agent's own. */
export function hookEnvironment(context: HookContext): Record<string, string> {
  return {
    VIPD_EVENT: context.event,
    VIPD_CAUSE: context.cause,
    VIPD_REASON: context.reason,
    VIPD_VIP: context.vip,
    VIPD_NODE: context.node,
    VIPD_NODE_IP: context.nodeIP,
    VIPD_MAC: context.mac,
    VIPD_TERM: context.term === null ? '' : String(context.term),
    VIPD_PREVIOUS_HOLDER: context.previousHolder ?? '',
    VIPD_CLUSTER: context.cluster,
    VIPD_TIME: context.time,
  };
}

// ---- running one hook once ----

/** Each of stdout and stderr (or a webhook's response body) is kept up to this many bytes. */
export const OUTPUT_LIMIT_BYTES = 4096;


export interface AttemptResult extends HookAttemptRecord {
  ok: boolean;
  failure: AttemptFailure | null;
}

/** Collects a stream's first OUTPUT_LIMIT_BYTES bytes and notes whether there was more. */
class OutputBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  add(chunk: Buffer): void {
    const room = OUTPUT_LIMIT_BYTES - this.size;
    if (chunk.length > room) this.truncated = true;
    if (room <= 0) return;
    const kept = chunk.subarray(0, room);
    this.chunks.push(kept);
    this.size += kept.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

function result(partial: Partial<AttemptResult> & Pick<AttemptResult, 'ok' | 'detail' | 'durationMs'>): AttemptResult {
  return { failure: null, exitCode: null, signal: null, httpStatus: null, stdout: '', stderr: '', truncated: false, ...partial };
}

/**
 * Runs argv without a shell, with `env` added to the agent's environment. At the timeout
 * (or on abort) the whole process group is killed, so a script's children go too.
 */
export function runCommand(argv: string[], env: Record<string, string>, timeoutMs: number, signal?: AbortSignal): Promise<AttemptResult> {
  const started = monotonicMs();
  const stdout = new OutputBuffer();
  const stderr = new OutputBuffer();
  return new Promise((resolve) => {
    let settled = false;
    let timedOut = false;
    let aborted = false;
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: the timeout kills the script and everything it started.
      detached: true,
    });
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      killGroup();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (value: AttemptResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const outputs = (): Pick<AttemptResult, 'stdout' | 'stderr' | 'truncated'> => ({
      stdout: stdout.text(),
      stderr: stderr.text(),
      truncated: stdout.truncated || stderr.truncated,
    });
    child.stdout!.on('data', (chunk: Buffer) => stdout.add(chunk));
    child.stderr!.on('data', (chunk: Buffer) => stderr.add(chunk));
    child.once('error', (error) => {
      finish(result({ ok: false, failure: 'error', detail: `could not run ${argv[0]}: ${error.message}`, durationMs: monotonicMs() - started, ...outputs() }));
    });
    child.once('exit', (code, exitSignal) => {
      const report = (): void => {
        const durationMs = monotonicMs() - started;
        const base = { exitCode: code, signal: exitSignal, durationMs, ...outputs() };
        if (timedOut) finish(result({ ...base, ok: false, failure: 'timeout', detail: `timed out after ${timeoutMs}ms and was killed` }));
        else if (aborted) finish(result({ ...base, ok: false, failure: 'error', detail: 'stopped: the agent is shutting down' }));
        else if (code === 0) finish(result({ ...base, ok: true, detail: 'exit code 0' }));
        else if (code !== null) finish(result({ ...base, ok: false, failure: 'exit', detail: `exit code ${code}` }));
        else finish(result({ ...base, ok: false, failure: 'exit', detail: `killed by ${exitSignal}` }));
      };
      // A background child may keep the pipes open: wait briefly for the rest of the output, not for it.
      const grace = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        report();
      }, 200);
      child.once('close', () => {
        clearTimeout(grace);
        report();
      });
    });
  });
}

/**
 * POSTs `body` as JSON. With `ca`, only that CA is trusted; redirects are not followed. A
 * 2xx answer is success.
 */
export function postWebhook(
  url: string,
  headers: Record<string, string>,
  ca: string | null,
  body: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<AttemptResult> {
  const started = monotonicMs();
  const target = new URL(url);
  const response = new OutputBuffer();
  return new Promise((resolve) => {
    let settled = false;
    let request: ClientRequest;
    const finish = (value: Omit<AttemptResult, 'durationMs' | 'stdout' | 'stderr' | 'truncated' | 'exitCode' | 'signal'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve({ ...value, exitCode: null, signal: null, stdout: response.text(), stderr: '', truncated: response.truncated, durationMs: monotonicMs() - started });
    };
    const timer = setTimeout(() => {
      finish({ ok: false, failure: 'timeout', detail: `no answer within ${timeoutMs}ms`, httpStatus: null });
      request.destroy();
    }, timeoutMs);
    const onAbort = (): void => {
      finish({ ok: false, failure: 'error', detail: 'stopped: the agent is shutting down', httpStatus: null });
      request.destroy();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const options = {
      method: 'POST',
      headers: {
        'user-agent': 'vipd-hook',
        ...headers,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      },
      ...(ca !== null ? { ca } : {}),
    };
    const onResponse = (answer: IncomingMessage): void => {
      answer.on('data', (chunk: Buffer) => response.add(chunk));
      answer.on('error', () => undefined);
      answer.on('end', () => {
        const status = answer.statusCode ?? 0;
        const ok = status >= 200 && status < 300;
        finish({ ok, failure: ok ? null : 'http', detail: `HTTP ${status}`, httpStatus: status });
      });
    };
    request = target.protocol === 'https:' ? httpsRequest(target, options, onResponse) : httpRequest(target, options, onResponse);
    request.on('error', (error) => finish({ ok: false, failure: 'error', detail: error.message, httpStatus: null }));
    request.end(body);
  });
}

// ---- the runner ----

/** What the runner reports to metrics. */
export interface HookMetrics {
  hookFinished(event: HookEvent, outcome: HookRunRecord['outcome']): void;
  hookAttemptFailed(event: HookEvent, failure: AttemptFailure): void;
}

export interface HookRunnerOptions {
  hooks: HookConfig[];
  node: string;
  logger: Logger;
  history?: HookHistory;
  metrics?: HookMetrics;
  /** Whether this node still has the VIP at `term`: a late failure for an earlier term is no reason to resign. */
  holds: (term: number | null) => boolean;
  /** Called when a cooldown starts and when it ends, so the agent acts on it. */
  onCooldownChange: () => void;
}

/** Runs queued beyond this per hook drop the oldest: a flapping VIP must not pile up work. */
const MAX_QUEUED_PER_HOOK = 16;
const MAX_BACKOFF_MS = 60_000;

interface HookQueue {
  hook: HookConfig;
  queued: HookContext[];
  running: boolean;
}

/**
 * Runs each hook's events in order (one hook's runs never overlap, so a webhook sees acquire
 * before release), different hooks side by side, with retries and exponential backoff.
 */
export class HookRunner {
  private readonly queues: HookQueue[];
  private readonly idleWaiters = new Set<() => void>();
  private readonly abort = new AbortController();
  private readonly writes = new Set<Promise<void>>();
  private cooldown: { until: number; reason: string } | null = null;
  private cooldownTimer: NodeJS.Timeout | undefined;
  /** The term at which a required hook last failed: a later success at that term does not clear the failure. */
  private failedTerm: number | null | undefined = undefined;

  constructor(private readonly options: HookRunnerOptions) {
    this.queues = options.hooks.map((hook) => ({ hook, queued: [], running: false }));
  }

  /**
   * Checks what the config cannot: the commands can be run and the CA files read. Throws
   * InputError naming the field, before the agent changes anything.
   */
  static check(hooks: HookConfig[]): void {
    for (const hook of hooks) {
      if (hook.action.kind === 'command') {
        const program = hook.action.argv[0]!;
        const field = `${hook.field}.command[0]`;
        try {
          accessSync(program, constants.X_OK);
        } catch (error) {
          throw new InputError(field, `cannot run ${program}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
        }
        const stats = statSync(program);
        if (!stats.isFile()) throw new InputError(field, `${program} is not a regular file`);
        // The agent runs it as root on every move: whoever may edit it may run anything there.
        if ((stats.mode & 0o022) !== 0) {
          throw new InputError(field, `${program} is writable by its group or every user (mode ${(stats.mode & 0o777).toString(8).padStart(4, '0')}); run: chmod go-w ${program}`);
        }
      } else if (hook.action.ca !== null) {
        readCa(hook.action.ca, `${hook.field}.webhook.ca`);
      }
    }
  }

  get hasHooks(): boolean {
    return this.queues.length > 0;
  }

  /** Why this node must stay out of the election now, or null. */
  cooldownReason(): string | null {
    if (!this.cooldown) return null;
    if (monotonicMs() >= this.cooldown.until) {
      this.cooldown = null;
      return null;
    }
    return this.cooldown.reason;
  }

  /** Queues every hook that wants this event; returns at once. */
  dispatch(context: HookContext): void {
    if (this.abort.signal.aborted) return;
    for (const queue of this.queues) {
      if (!queue.hook.on.includes(context.event)) continue;
      queue.queued.push(context);
      if (queue.queued.length > MAX_QUEUED_PER_HOOK) {
        const dropped = queue.queued.shift()!;
        this.options.logger.warn({ hook: queue.hook.name, event: dropped.event, term: dropped.term }, 'too many hook runs queued; dropped the oldest');
        this.finished(queue.hook, dropped, 'dropped', 0, result({ ok: false, detail: 'dropped: too many runs queued', durationMs: 0 }));
      }
      if (!queue.running) {
        queue.running = true;
        // Not even the spawn happens in the caller's turn: that is the reconcile loop or the election.
        setImmediate(() => void this.drainQueue(queue));
      }
    }
  }

  private async drainQueue(queue: HookQueue): Promise<void> {
    try {
      for (let context = queue.queued.shift(); context; context = queue.queued.shift()) {
        await this.run(queue.hook, context);
      }
    } finally {
      queue.running = false;
      if (this.idle()) for (const waiter of this.idleWaiters) waiter();
    }
  }

  private idle(): boolean {
    return this.queues.every((queue) => !queue.running && queue.queued.length === 0);
  }

  private attempt(hook: HookConfig, context: HookContext): Promise<AttemptResult> {
    const signal = this.abort.signal;
    if (hook.action.kind === 'command') return runCommand(hook.action.argv, hookEnvironment(context), hook.timeoutMs, signal);
    let ca: string | null = null;
    if (hook.action.ca !== null) {
      try {
        // Read on every run, so a renewed CA file is picked up without a restart.
        ca = readCa(hook.action.ca, `${hook.field}.webhook.ca`);
      } catch (error) {
        return Promise.resolve(result({ ok: false, failure: 'error', detail: (error as Error).message, durationMs: 0 }));
      }
    }
    return postWebhook(hook.action.url, hook.action.headers, ca, JSON.stringify(context), hook.timeoutMs, signal);
  }

  private async run(hook: HookConfig, context: HookContext): Promise<void> {
    const started = monotonicMs();
    let attempts = 0;
    let last: AttemptResult;
    for (;;) {
      attempts += 1;
      last = await this.attempt(hook, context);
      if (last.ok) break;
      this.options.metrics?.hookAttemptFailed(context.event, last.failure ?? 'error');
      if (attempts > hook.retries || this.abort.signal.aborted) break;
      const delay = Math.min(hook.backoffMs * 2 ** (attempts - 1), MAX_BACKOFF_MS);
      this.options.logger.warn({ hook: hook.name, event: context.event, term: context.term, attempt: attempts, detail: last.detail, retryInMs: delay }, 'hook failed; retrying');
      await this.sleep(delay);
    }
    const durationMs = monotonicMs() - started;
    this.finished(hook, context, last.ok ? 'ok' : 'failed', attempts, { ...last, durationMs });
    if (hook.required && context.event === 'acquire') this.requiredDone(hook, context, last, attempts);
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.abort.signal;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Keeps history writes in view, so drain() can let them reach etcd before the agent closes it. */
  private track(write: Promise<void>): void {
    this.writes.add(write);
    void write.finally(() => this.writes.delete(write));
  }

  private finished(hook: HookConfig, context: HookContext, outcome: HookRunRecord['outcome'], attempts: number, last: AttemptResult): void {
    const { logger, history, metrics, node } = this.options;
    metrics?.hookFinished(context.event, outcome);
    const summary = { hook: hook.name, event: context.event, term: context.term, attempts, detail: last.detail, durationMs: Math.round(last.durationMs) };
    // Output goes to the history only: a script may print what it was given.
    if (outcome === 'ok') logger.info(summary, 'hook succeeded');
    else logger.warn({ ...summary, required: hook.required }, 'hook failed');
    if (!history) return;
    const record: HookRunRecord = {
      node,
      hook: hook.name,
      event: context.event,
      cause: context.cause,
      term: context.term,
      required: hook.required,
      outcome,
      attempts,
      detail: last.detail,
      exitCode: last.exitCode,
      signal: last.signal,
      httpStatus: last.httpStatus,
      stdout: last.stdout,
      stderr: last.stderr,
      truncated: last.truncated,
      durationMs: Math.round(last.durationMs),
      time: new Date().toISOString(),
    };
    this.track(history.record(record).catch((error: Error) => logger.warn({ err: error.message, hook: hook.name }, 'could not record the hook run')));
  }

  private requiredDone(hook: HookConfig, context: HookContext, last: AttemptResult, attempts: number): void {
    const { logger, history, node } = this.options;
    if (last.ok) {
      if (this.failedTerm !== context.term) {
        if (history) this.track(history.clearFailure(node).catch((error: Error) => logger.debug({ err: error.message }, 'could not clear the hook failure')));
      }
      return;
    }
    this.failedTerm = context.term;
    if (!this.options.holds(context.term)) {
      logger.warn({ hook: hook.name, term: context.term }, 'a required acquire hook failed, but this node no longer holds the VIP at that term');
      return;
    }
    const reason = `required acquire hook ${hook.name} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${last.detail}`;
    const until = monotonicMs() + hook.cooldownMs;
    this.cooldown = { until, reason };
    logger.error({ hook: hook.name, term: context.term, cooldownMs: hook.cooldownMs }, `${reason}; giving the VIP up`);
    const failure: HookFailureRecord = {
      node,
      hook: hook.name,
      term: context.term,
      reason,
      time: new Date().toISOString(),
      cooldownUntil: new Date(Date.now() + hook.cooldownMs).toISOString(),
    };
    if (history) this.track(history.setFailure(failure).catch((error: Error) => logger.warn({ err: error.message }, 'could not record the hook failure for status')));
    clearTimeout(this.cooldownTimer);
    this.cooldownTimer = setTimeout(() => this.options.onCooldownChange(), hook.cooldownMs + 1);
    this.cooldownTimer.unref();
    this.options.onCooldownChange();
  }

  /**
   * Waits for queued runs (retries included) for at most `timeoutMs`, then kills what still
   * runs. Called when the agent stops, after its own release was dispatched.
   */
  async drain(timeoutMs: number): Promise<void> {
    await this.untilIdle(timeoutMs);
    clearTimeout(this.cooldownTimer);
    this.abort.abort();
    // Killed runs settle at once; give them and the history writes a moment, not more.
    await this.untilIdle(1000);
    await Promise.race([Promise.all([...this.writes]), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
  }

  private async untilIdle(timeoutMs: number): Promise<void> {
    if (this.idle()) return;
    let release: () => void = () => undefined;
    const idle = new Promise<void>((resolve) => {
      release = resolve;
      this.idleWaiters.add(resolve);
    });
    const timer = setTimeout(release, timeoutMs);
    await idle;
    clearTimeout(timer);
    this.idleWaiters.delete(release);
  }
}

function readCa(path: string, field: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (error) {
    throw new InputError(field, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    new X509Certificate(pem);
  } catch {
    throw new InputError(field, `${path} holds no PEM certificate`);
  }
  return pem;
}
