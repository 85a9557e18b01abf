import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { inNamespace } from './lab';

/** One stretch of time in which a node was seen holding the VIP (monotonic ns). */
export interface HoldingInterval {
  node: string;
  from: bigint;
  /** Last sample that still saw the VIP; null while it still holds it. */
  to: bigint | null;
  /** First sample that no longer saw it. */
  goneAt: bigint | null;
}

export interface Overlap {
  first: string;
  second: string;
  at: bigint;
  durationMs: number;
}

/**
 * Watches every node's addresses and records who held the VIP when. Two nodes holding it
 * at the same sampled moment is the one failure vipd must never have.
 */
export class VipObserver {
  private readonly probes: ChildProcess[] = [];
  readonly intervals: HoldingInterval[] = [];
  private stopping = false;
  private readonly deaths: string[] = [];

  private constructor() {}

  static async start(vip: string, nodes: Array<{ name: string; namespace: string }>, intervalMs = 10): Promise<VipObserver> {
    const observer = new VipObserver();
    const probePath = join(__dirname, 'observer-probe.js');
    await Promise.all(
      nodes.map(
        (node) =>
          new Promise<void>((resolve, reject) => {
            const child = spawn(...inNamespace(node.namespace, process.execPath, probePath, vip, String(intervalMs)), {
              stdio: ['ignore', 'pipe', 'inherit'],
            });
            observer.probes.push(child);
            child.on('error', (error) => {
              observer.died(`the probe on ${node.name} failed: ${error.message}`);
              reject(error);
            });
            // A probe that dies leaves its node unwatched: the never-two-holders check would go blind there.
            child.once('exit', (code, signal) => {
              if (observer.stopping) return;
              observer.died(`the probe on ${node.name} exited (code ${code}, signal ${signal}): that node is no longer watched`);
              reject(new Error(observer.deaths.at(-1)));
            });
            createInterface({ input: child.stdout! }).on('line', (line) => {
              const [kind, a, b] = line.split(' ');
              if (kind === 'R') resolve();
              if (kind === 'P' && a) observer.intervals.push({ node: node.name, from: BigInt(a), to: null, goneAt: null });
              if (kind === 'A' && a && b) {
                const open = [...observer.intervals].reverse().find((entry) => entry.node === node.name && entry.to === null);
                if (open) {
                  open.to = BigInt(a);
                  open.goneAt = BigInt(b);
                }
              }
            });
          }),
      ),
    ).catch((error: unknown) => {
      observer.stop();
      throw error;
    });
    return observer;
  }

  private died(why: string): void {
    if (!this.stopping) this.deaths.push(why);
  }

  /** Why the observer cannot vouch for every node any more (a probe died before stop()), or null. */
  get failure(): string | null {
    return this.deaths.length > 0 ? this.deaths.join('; ') : null;
  }

  /** Throws if a probe died: nothing the observer says covers every node then. */
  assertSighted(): void {
    const failure = this.failure;
    if (failure !== null) throw new Error(`the VIP observer went blind: ${failure}`);
  }

  /** Nodes seen holding the VIP right now. */
  currentHolders(): string[] {
    this.assertSighted();
    return this.intervals.filter((entry) => entry.to === null).map((entry) => entry.node);
  }

  /** When the named node was last seen losing the VIP (monotonic ns), if it has. */
  lastRelease(node: string): bigint | null {
    this.assertSighted();
    const done = this.intervals.filter((entry) => entry.node === node && entry.goneAt !== null);
    return done.at(-1)?.goneAt ?? null;
  }

  /**
   * Overlaps in the sampled intervals. Does not throw when a probe died (teardown code calls
   * it): final checks call assertSighted() as well (assertNeverTwoHolders, the chaos runner).
   */
  overlaps(): Overlap[] {
    const now = process.hrtime.bigint();
    const found: Overlap[] = [];
    for (let i = 0; i < this.intervals.length; i += 1) {
      for (let j = i + 1; j < this.intervals.length; j += 1) {
        const a = this.intervals[i]!;
        const b = this.intervals[j]!;
        if (a.node === b.node) continue;
        const start = a.from > b.from ? a.from : b.from;
        const aEnd = a.to ?? now;
        const bEnd = b.to ?? now;
        const end = aEnd < bEnd ? aEnd : bEnd;
        if (start <= end) found.push({ first: a.node, second: b.node, at: start, durationMs: Number(end - start) / 1e6 });
      }
    }
    return found;
  }

  /** Kills the probes; a probe that dies from here on is expected. */
  stop(): void {
    this.stopping = true;
    for (const probe of this.probes) probe.kill('SIGKILL');
  }
}
