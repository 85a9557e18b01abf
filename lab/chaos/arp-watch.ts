/**
 * The client's view of who answers for the VIP, from the benchmark's ARP prober
 * (bench/arp-prober.ts) in the client namespace: every round is one ARP request, and two
 * MACs answering one round means two nodes answered for the VIP at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { inNamespace, type Lab } from '../lab';

/** The prober asks as its own host, so it never rewrites the client's neighbour cache. */
const PROBER_MAC = '02:63:68:61:6f:73';
const PROBER_IP = '192.0.2.102';

export interface ArpAnswer {
  round: number;
  mac: string;
  atMs: number;
}

export interface TwoMacRound {
  round: number;
  macs: string[];
  atMs: number;
}

export class ArpWatch {
  private readonly answers: ArpAnswer[] = [];
  private readonly byRound = new Map<number, Set<string>>();
  readonly twoMacRounds: TwoMacRound[] = [];
  private exited: string | null = null;
  private stopping = false;

  private constructor(private readonly child: ChildProcess) {}

  static proberPath(): string {
    return join(__dirname, '..', '..', 'bench', 'arp-prober.js');
  }

  static async start(lab: Lab, intervalMs = 10): Promise<ArpWatch> {
    const path = ArpWatch.proberPath();
    if (!existsSync(path)) {
      throw new Error(`${path} is missing: the chaos runner uses the benchmark's ARP prober; add "bench" to tsconfig.json's include and rebuild`);
    }
    const child = spawn(...inNamespace(lab.clientNs, process.execPath, path, 'eth0', lab.vip, PROBER_IP, PROBER_MAC, String(intervalMs)), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const watch = new ArpWatch(child);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
    // Only a death before stop() counts: the client's view is unwatched from then on.
    child.once('exit', (code, signal) => {
      if (!watch.stopping) watch.exited = `exited (${code ?? signal}): ${stderr.trim()}`;
    });
    child.on('error', (error) => {
      if (!watch.stopping) watch.exited ??= `failed: ${error.message}`;
    });
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', () => reject(new Error(`the ARP prober ${watch.exited}`)));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const parsed = JSON.parse(line) as Partial<ArpAnswer> & { ready?: boolean };
        if (parsed.ready) resolve();
        else if (typeof parsed.round === 'number' && typeof parsed.atMs === 'number' && parsed.mac) watch.note(parsed as ArpAnswer);
      });
    });
    return watch;
  }

  private note(answer: ArpAnswer): void {
    this.answers.push(answer);
    if (this.answers.length > 20_000) this.answers.splice(0, 10_000);
    const macs = this.byRound.get(answer.round) ?? new Set<string>();
    const before = macs.size;
    macs.add(answer.mac);
    this.byRound.set(answer.round, macs);
    if (before === 1 && macs.size === 2) this.twoMacRounds.push({ round: answer.round, macs: [...macs], atMs: answer.atMs });
    else if (macs.size > 2) this.twoMacRounds.at(-1)!.macs = [...macs];
    // Rounds only grow: forget old ones.
    if (this.byRound.size > 1000) {
      for (const round of [...this.byRound.keys()].slice(0, 500)) this.byRound.delete(round);
    }
  }

  /** Why the prober stopped, if it did: the run cannot vouch for the client's view then. */
  get failure(): string | null {
    return this.exited;
  }

  /** The MACs that answered since a monotonic time (ms). */
  macsSince(sinceMs: number): string[] {
    const macs = new Set<string>();
    for (let i = this.answers.length - 1; i >= 0 && this.answers[i]!.atMs >= sinceMs; i -= 1) macs.add(this.answers[i]!.mac);
    return [...macs];
  }

  stop(): void {
    this.stopping = true;
    this.child.kill('SIGKILL');
  }
}
