import rateLimit from '@fastify/rate-limit';
import { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { HttpError } from './errors';

export interface AuthFailureOptions {
  /** Bad tokens one IP may present per window before it gets 429; default 10. */
  maxFailures?: number;
  /** Default 60 s. */
  windowMs?: number;
  /** Failed attempts are logged as one line per IP per interval; default 60 s. */
  logIntervalMs?: number;
}

type Limiter = ReturnType<FastifyInstance['createRateLimit']>;

// Requests refused for a bad token: their per-request log lines are left out (see QuietLogController).
const quiet = new WeakSet<object>();

/**
 * Per-IP backoff for bad tokens, counted by @fastify/rate-limit: an IP that presented too
 * many bad tokens in a window gets 429 with Retry-After, before its token costs an etcd
 * read. Good tokens are not counted. Failures are logged as one line per IP per interval,
 * with counts and never a token.
 */
export class AuthFailures {
  private limiter: Limiter | null = null;
  private readonly pending = new Map<string, { failures: number; throttled: number }>();
  private readonly timer: NodeJS.Timeout;
  readonly maxFailures: number;
  readonly windowMs: number;

  constructor(
    private readonly app: FastifyInstance,
    private readonly logger: Logger | null,
    options: AuthFailureOptions = {},
  ) {
    this.maxFailures = options.maxFailures ?? 10;
    this.windowMs = options.windowMs ?? 60_000;
    // The plugin only counts where asked (createRateLimit): not every request.
    void app.register(rateLimit, { global: false });
    this.timer = setInterval(() => this.flush(), options.logIntervalMs ?? 60_000);
    this.timer.unref();
  }

  // The plugin decorates the instance once registered, i.e. when the server is ready.
  private limit(): Limiter {
    this.limiter ??= this.app.createRateLimit({ max: this.maxFailures, timeWindow: this.windowMs });
    return this.limiter;
  }

  /** 429 for an IP over its limit, without counting this request: it has not failed yet. */
  async refuseIfThrottled(request: FastifyRequest): Promise<void> {
    const state = await this.limit()(request, { increment: false });
    if (!state.isAllowed && state.isExceeded) this.throttle(request, state.ttlInSeconds);
  }

  /** Counts a bad token; throws `refusal`, or 429 once the IP is over its limit. */
  async failed(request: FastifyRequest, refusal: HttpError): Promise<never> {
    const state = await this.limit()(request);
    this.note(request, 'failures');
    if (!state.isAllowed && state.isExceeded) this.throttle(request, state.ttlInSeconds);
    throw refusal;
  }

  private throttle(request: FastifyRequest, retryAfterSeconds: number): never {
    this.note(request, 'throttled');
    const seconds = Math.max(1, retryAfterSeconds);
    throw new HttpError(429, `too many bad tokens from this address; retry in ${seconds} s`, { 'retry-after': String(seconds) });
  }

  private note(request: FastifyRequest, what: 'failures' | 'throttled'): void {
    quiet.add(request);
    const entry = this.pending.get(request.ip) ?? { failures: 0, throttled: 0 };
    entry[what]++;
    this.pending.set(request.ip, entry);
  }

  /** One line per IP since the last flush. */
  flush(): void {
    for (const [ip, { failures, throttled }] of this.pending) {
      this.logger?.warn({ ip, failures, throttled, windowMs: this.windowMs }, 'requests with a bad token');
    }
    this.pending.clear();
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}

/**
 * One log line per request (the completion, with method and URL), and none for a request
 * refused for a bad token: AuthFailures logs those aggregated, so a flood cannot fill the log.
 */
export class QuietLogController extends LogController {
  override isLogDisabled(request: FastifyRequest): boolean {
    return quiet.has(request);
  }

  override incomingRequest(): void {
    // The completion line says the same and more.
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    if (error) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}
