/**
 * The hook runner: user commands and webhooks run when the VIP comes to this node (acquire), leaves
 * it on purpose (release) or is lost (fault). They run in the background, never in the
 * agent's reconcile loop or the election: a slow or hanging hook cannot delay fencing.
 */
import { isDeepStrictEqual } from 'node:util';
import { ExponentialBackoff, handleWhenResult, noJitterGenerator, retry } from 'cockatiel';
import type { Logger } from 'pino';
import { monotonicMs } from '../clock';
import type { HookConfig, HookEvent } from '../config/config';
import type { HookHistory } from '../store/hook-history';
import type { AttemptFailure, HookFailureRecord, HookRunRecord } from '../store/records';
import { attemptResult, type AttemptResult } from './attempt';
import { checkCommand, readCa } from '../config/referenced-files';
import { runCommand } from './command';
import { hookEnvironment, type HookContext } from './context';
import { postWebhook } from './webhook';

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
  private queues: HookQueue[];
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
      if (hook.action.kind === 'command') checkCommand(hook.action.argv[0]!, `${hook.field}.command[0]`);
      else if (hook.action.ca !== null) readCa(hook.action.ca, `${hook.field}.webhook.ca`);
    }
  }

  /**
   * A reload (issue 14): the new hooks run from the next event on. An unchanged hook keeps its
   * queue, so its runs stay in order; a removed one finishes what it has queued.
   */
  replaceHooks(hooks: HookConfig[]): void {
    const before = this.queues;
    this.queues = hooks.map((hook) => before.find((queue) => isDeepStrictEqual(queue.hook, hook)) ?? { hook, queued: [], running: false });
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
        this.finished(queue.hook, dropped, 'dropped', 0, attemptResult({ ok: false, detail: 'dropped: too many runs queued', durationMs: 0 }));
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
        return Promise.resolve(attemptResult({ ok: false, failure: 'error', detail: (error as Error).message, durationMs: 0 }));
      }
    }
    return postWebhook(hook.action.url, hook.action.headers, ca, JSON.stringify(context), hook.timeoutMs, signal);
  }

  private async run(hook: HookConfig, context: HookContext): Promise<void> {
    const started = monotonicMs();
    const attempt = async (): Promise<AttemptResult> => {
      const result = await this.attempt(hook, context);
      if (!result.ok) this.options.metrics?.hookAttemptFailed(context.event, result.failure ?? 'error');
      return result;
    };
    const { last, attempts } = await withRetries(hook, this.abort.signal, attempt, (failed, failedAttempts, delayMs) => {
      this.options.logger.warn({ hook: hook.name, event: context.event, term: context.term, attempt: failedAttempts, detail: failed.detail, retryInMs: delayMs }, 'hook failed; retrying');
    });
    const durationMs = monotonicMs() - started;
    this.finished(hook, context, last.ok ? 'ok' : 'failed', attempts, { ...last, durationMs });
    if (hook.required && context.event === 'acquire') this.requiredDone(hook, context, last, attempts);
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

/**
 * Runs `attempt` until it succeeds or `hook.retries` retries have failed, waiting
 * hook.backoffMs * 2^(n-1) (at most MAX_BACKOFF_MS) before retry n. An abort kills a running
 * attempt through the signal and ends a backoff at once, with the last failure.
 */
function withRetries(
  hook: HookConfig,
  signal: AbortSignal,
  attempt: () => Promise<AttemptResult>,
  onRetry: (failed: AttemptResult, attempts: number, delayMs: number) => void,
): Promise<{ last: AttemptResult; attempts: number }> {
  const policy = retry(handleWhenResult((value) => !(value as AttemptResult).ok), {
    maxAttempts: hook.retries,
    backoff: new ExponentialBackoff({ initialDelay: hook.backoffMs, maxDelay: MAX_BACKOFF_MS, generator: noJitterGenerator }),
  }).dangerouslyUnref();
  let attempts = 0;
  let last: AttemptResult | null = null;
  let backingOff = false;
  policy.onRetry(({ delay }) => {
    backingOff = true;
    onRetry(last!, attempts, delay);
  });
  return new Promise((resolve, reject) => {
    // cockatiel's backoff timer does not watch the signal: stop waiting for it here.
    const cut = (): void => {
      if (backingOff && last) resolve({ last, attempts });
    };
    signal.addEventListener('abort', cut, { once: true });
    const retried = policy.execute(async () => {
      backingOff = false;
      // The retry whose backoff an abort cut short comes due later still: it does not run.
      if (signal.aborted && last) return last;
      attempts += 1;
      last = await attempt();
      return last;
    }, signal);
    void retried.then((final) => resolve({ last: final, attempts }), reject).finally(() => signal.removeEventListener('abort', cut));
  });
}
