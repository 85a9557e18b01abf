import type { FastifyReply } from 'fastify';
import type { ApiBackend, ClusterChange, MoveEvent } from './backend';

export interface EventStreamOptions {
  heartbeatMs: number;
  maxStreams: number;
  /** Streams one token may hold open: one leaked or looping client cannot take every slot. */
  maxStreamsPerToken: number;
  /** Headers every response carries; hijacked replies skip the onSend hook that adds them. */
  headers: Record<string, string>;
}

/** Thrown when too many streams are open: the error handler turns it into 503. */
export class TooManyStreamsError extends Error {
  readonly statusCode = 503;
}

const MAX_BUFFERED_BYTES = 256 * 1024;

/** One SSE frame: the event type (move, node, lease, health) and its record as JSON. */
function frame(change: ClusterChange): string {
  return `event: ${change.type}\ndata: ${JSON.stringify(change.event)}\n\n`;
}

/**
 * Live move events as Server-Sent Events: the history first, then each new event, with a
 * comment line as heartbeat so proxies and the browser notice a dead connection.
 */
export class EventStreams {
  private readonly open = new Set<() => void>();
  /** Slots taken, counting streams still reading their history; per token id. */
  private taken = 0;
  private readonly perToken = new Map<string, number>();

  constructor(
    private readonly backend: ApiBackend,
    private readonly options: EventStreamOptions,
  ) {}

  get count(): number {
    return this.open.size;
  }

  async serve(reply: FastifyReply, limit: number | undefined, tokenId: string): Promise<void> {
    // Checked and taken with no await between: concurrent requests cannot all pass the check.
    if (this.taken >= this.options.maxStreams) {
      throw new TooManyStreamsError(`too many open event streams (${this.options.maxStreams}); try again later`);
    }
    const mine = this.perToken.get(tokenId) ?? 0;
    if (mine >= this.options.maxStreamsPerToken) {
      throw new TooManyStreamsError(`this token has ${mine} event streams open, its limit; close one or try again later`);
    }
    this.taken++;
    this.perToken.set(tokenId, mine + 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.taken--;
      const left = (this.perToken.get(tokenId) ?? 1) - 1;
      if (left > 0) this.perToken.set(tokenId, left);
      else this.perToken.delete(tokenId);
    };
    try {
      await this.stream(reply, limit, release);
    } catch (error) {
      release();
      throw error;
    }
  }

  private async stream(reply: FastifyReply, limit: number | undefined, release: () => void): Promise<void> {
    // Subscribe before reading the history, so no event falls between the two.
    const early: ClusterChange[] = [];
    let send: ((change: ClusterChange) => void) | null = null;
    const unsubscribe = this.backend.subscribe((change) => (send ? send(change) : early.push(change)));
    let history: MoveEvent[];
    try {
      history = await this.backend.events(limit);
    } catch (error) {
      unsubscribe();
      throw error;
    }

    reply.hijack();
    const response = reply.raw;
    response.writeHead(200, {
      ...this.options.headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    response.write('retry: 3000\n\n');
    const seen = new Set(history.map((event) => JSON.stringify(event)));
    for (const event of history) response.write(frame({ type: 'move', event }));
    for (const change of early) if (change.type !== 'move' || !seen.has(JSON.stringify(change.event))) response.write(frame(change));
    const write = (text: string): void => {
      // A client that stops reading would make us buffer without bound: drop it instead.
      if (response.writableLength > MAX_BUFFERED_BYTES) close();
      else response.write(text);
    };
    send = (change) => write(frame(change));

    const heartbeat = setInterval(() => write(': heartbeat\n\n'), this.options.heartbeatMs);
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      unsubscribe();
      this.open.delete(close);
      release();
      if (!response.writableEnded) response.end();
    };
    this.open.add(close);
    // Not the request's 'close': Node emits that once the request body is read.
    response.on('close', close);
    response.on('error', close);
    // A client gone while the history was read: its 'close' has fired already, and the slot must not leak.
    if (response.socket?.destroyed) close();
  }

  /** Ends every open stream, so the server can close. */
  closeAll(): void {
    for (const close of [...this.open]) close();
  }
}
