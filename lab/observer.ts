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
            child.once('error', reject);
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
    );
    return observer;
  }

  /** Nodes seen holding the VIP right now. */
  currentHolders(): string[] {
    return this.intervals.filter((entry) => entry.to === null).map((entry) => entry.node);
  }

  /** When the named node was last seen losing the VIP (monotonic ns), if it has. */
  lastRelease(node: string): bigint | null {
    const done = this.intervals.filter((entry) => entry.node === node && entry.goneAt !== null);
    return done.at(-1)?.goneAt ?? null;
  }

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

  stop(): void {
    for (const probe of this.probes) probe.kill('SIGKILL');
  }
}
