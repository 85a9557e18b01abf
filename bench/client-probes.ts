/**
 * The client's view of the VIP during a benchmark: ICMP replies, ARP answers and the
 * announcements seen on the wire, each from its own process in the client's namespace.
 * Every timestamp is monotonic milliseconds, comparable with process.hrtime here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { AnnouncementCapture, Lab } from '../lab/lab';
import { inNamespace } from '../lab/lab';

export interface ArpAnswer {
  round: number;
  mac: string;
  atMs: number;
}

export interface ReplyGap {
  /** The longest time without an ICMP reply in the window. */
  gapMs: number;
  /** When that gap began, relative to the window's start (negative: before it). */
  startOffsetMs: number;
  /** True when the window ended without a reply after the gap. */
  openAtEnd: boolean;
  replies: number;
}

export interface ArpOverlap {
  /** Probe rounds answered by two or more MACs. */
  rounds: number;
  /** rounds × probe interval: how long two nodes answered for the VIP. */
  ms: number;
  macs: string[];
}

/** Who asks in the ARP prober: its own identity, or the client's (which disturbs the client's cache). */
export type ArpIdentity = 'separate' | 'client';

export interface ClientProbeOptions {
  intervalMs: number;
  arpIdentity: ArpIdentity;
}

/** A locally administered MAC and an unused lab address for the ARP prober. */
const PROBER_MAC = '02:62:65:6e:63:68';
const PROBER_IP = '192.0.2.101';
const CLIENT_IP = '192.0.2.100';

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export class ClientProbes {
  /** ICMP reply times, in arrival order (nearly sorted; sorted before use). */
  private replies: number[] = [];
  private answers: ArpAnswer[] = [];
  private readonly children: ChildProcess[] = [];
  private failure: string | null = null;
  private stopped = false;
  capture: AnnouncementCapture | null = null;
  arpMac = '';

  private constructor(
    private readonly lab: Lab,
    readonly options: ClientProbeOptions,
  ) {}

  static async start(lab: Lab, options: ClientProbeOptions): Promise<ClientProbes> {
    const probes = new ClientProbes(lab, options);
    try {
      const interval = String(options.intervalMs);
      await probes.spawnProber('icmp', [join(__dirname, 'icmp-prober.js'), lab.vip, interval], (line) => {
        const parsed = JSON.parse(line) as { atMs?: number };
        if (typeof parsed.atMs === 'number') probes.replies.push(parsed.atMs);
      });
      const identity = options.arpIdentity === 'client' ? [CLIENT_IP, '-'] : [PROBER_IP, PROBER_MAC];
      await probes.spawnProber('arp', [join(__dirname, 'arp-prober.js'), 'eth0', lab.vip, ...identity, interval], (line) => {
        const parsed = JSON.parse(line) as Partial<ArpAnswer> & { ready?: boolean; mac?: string };
        if (parsed.ready) probes.arpMac = parsed.mac ?? '';
        else if (typeof parsed.round === 'number' && typeof parsed.atMs === 'number' && parsed.mac) {
          probes.answers.push({ round: parsed.round, mac: parsed.mac, atMs: parsed.atMs });
        }
      });
      probes.capture = await lab.captureAnnouncements();
    } catch (error) {
      probes.stop();
      throw error;
    }
    return probes;
  }

  private async spawnProber(name: string, args: string[], onLine: (line: string) => void): Promise<void> {
    const child = spawn(...inNamespace(this.lab.clientNs, process.execPath, ...args), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2000);
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} prober did not start: ${stderr.trim()}`)), 10_000);
      child.once('error', reject);
      child.once('exit', (code) => {
        clearTimeout(timer);
        if (!this.stopped) this.failure = `${name} prober exited (${code}): ${stderr.trim()}`;
        reject(new Error(this.failure ?? `${name} prober exited`));
      });
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.includes('"ready"')) {
          clearTimeout(timer);
          resolve();
        }
        onLine(line);
      });
    }).catch((error: Error) => {
      if (!this.failure) throw error;
      throw new Error(this.failure);
    });
  }

  /** Throws if a prober died: every figure after that would be wrong. */
  check(): void {
    if (this.failure) throw new Error(this.failure);
  }

  lastReplyAt(): number | null {
    return this.replies.at(-1) ?? null;
  }

  /** True when the VIP answered ping within the last `withinMs`. */
  answering(withinMs: number): boolean {
    const last = this.lastReplyAt();
    return last !== null && nowMs() - last <= withinMs;
  }

  firstReplyAfter(fromMs: number): number | null {
    for (const at of this.replies) if (at >= fromMs) return at;
    return null;
  }

  /** The longest stretch without a reply in [fromMs, toMs], counted from the last reply before fromMs. */
  longestGap(fromMs: number, toMs: number): ReplyGap {
    const sorted = this.replies.filter((at) => at <= toMs).sort((a, b) => a - b);
    let anchor = fromMs;
    for (const at of sorted) if (at <= fromMs) anchor = at;
    const inside = sorted.filter((at) => at > fromMs);
    let previous = anchor;
    let best = { gapMs: 0, startOffsetMs: anchor - fromMs, openAtEnd: false };
    for (const at of inside) {
      if (at - previous > best.gapMs) best = { gapMs: at - previous, startOffsetMs: previous - fromMs, openAtEnd: false };
      previous = at;
    }
    if (toMs - previous > best.gapMs) best = { gapMs: toMs - previous, startOffsetMs: previous - fromMs, openAtEnd: true };
    return { ...best, replies: inside.length };
  }

  /** Rounds in [fromMs, toMs] that two or more MACs answered. */
  arpOverlap(fromMs: number, toMs: number): ArpOverlap {
    const byRound = new Map<number, Set<string>>();
    const macs = new Set<string>();
    for (const answer of this.answers) {
      if (answer.atMs < fromMs || answer.atMs > toMs) continue;
      macs.add(answer.mac);
      const set = byRound.get(answer.round) ?? new Set<string>();
      set.add(answer.mac);
      byRound.set(answer.round, set);
    }
    let rounds = 0;
    for (const set of byRound.values()) if (set.size > 1) rounds += 1;
    return { rounds, ms: rounds * this.options.intervalMs, macs: [...macs].sort() };
  }

  /** Times of the gratuitous ARPs (requests and replies) from `mac` in [fromMs, toMs]. */
  announcementTimes(mac: string, fromMs: number, toMs: number): number[] {
    // frame-capture stamps whole milliseconds (rounded down).
    const from = Math.floor(fromMs);
    return (this.capture?.seen ?? [])
      .filter((entry) => entry.kind !== 'na' && entry.sourceMac === mac && entry.atMs >= from && entry.atMs <= toMs)
      .map((entry) => entry.atMs);
  }

  /** The first gratuitous ARP from `mac` in the window, and how many there were. */
  announcements(mac: string, fromMs: number, toMs: number): { firstMs: number | null; count: number } {
    const times = this.announcementTimes(mac, fromMs, toMs);
    return { firstMs: times[0] ?? null, count: times.length };
  }

  /** Forgets samples older than `beforeMs`, so long runs keep a bounded memory. */
  prune(beforeMs: number): void {
    this.replies = this.replies.filter((at) => at >= beforeMs);
    this.answers = this.answers.filter((answer) => answer.atMs >= beforeMs);
    if (this.capture) {
      const keep = this.capture.seen.filter((entry) => entry.atMs >= beforeMs);
      this.capture.seen.splice(0, this.capture.seen.length, ...keep);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const child of this.children) child.kill('SIGKILL');
    this.capture?.stop();
  }
}
