/**
 * The `holder-service-dies` scenario's service (issue 13): a small HTTP server on every node
 * that answers 200 with the node's name, the systems' health checks on it, and a prober that
 * asks it through the VIP from the client.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { inNamespace, type Lab, type LabNode } from '../lab/lab';

/** The same check for every system and both profiles: keepalived's vrrp_script counts whole seconds. */
export interface ServiceCheck {
  port: number;
  intervalSeconds: number;
  fall: number;
  rise: number;
}

export const SERVICE_CHECK: ServiceCheck = { port: 18080, intervalSeconds: 1, fall: 3, rise: 2 };

/** On every address, so the check reaches it on loopback and the client through the VIP. */
const SERVER = `
const [name, port] = process.argv.slice(2);
require('http').createServer((request, response) => response.end(name)).listen(Number(port), '::', () => process.stdout.write('ready\\n'));
`;

interface Answer {
  node: string;
  atMs: number;
}

export class NodeServices {
  private readonly running = new Map<string, ChildProcess>();
  private prober: ChildProcess | null = null;
  private answers: Answer[] = [];
  private readonly script: string;

  private constructor(
    private readonly lab: Lab,
    readonly check: ServiceCheck,
  ) {
    this.script = join(lab.dir, 'service.js');
    writeFileSync(this.script, SERVER);
  }

  /** Starts the service on every node and the client's prober (every `intervalMs`). */
  static async start(lab: Lab, check: ServiceCheck, intervalMs: number): Promise<NodeServices> {
    const services = new NodeServices(lab, check);
    try {
      for (const node of lab.nodes) await services.restore(node);
      await services.startProber(intervalMs);
    } catch (error) {
      services.stop();
      throw error;
    }
    return services;
  }

  /** Starts the node's service (again) and resolves once it listens. */
  async restore(node: LabNode): Promise<void> {
    if (this.running.has(node.name)) return;
    const child = spawn(...inNamespace(node.namespace, process.execPath, this.script, node.name, String(this.check.port)), { stdio: ['ignore', 'pipe', 'ignore'] });
    this.running.set(node.name, child);
    child.once('exit', () => {
      if (this.running.get(node.name) === child) this.running.delete(node.name);
    });
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`${node.name}'s service exited (${code})`)));
      child.stdout!.once('data', () => resolve());
    });
  }

  /** SIGKILL of the node's service; resolves once it is gone. */
  async kill(node: LabNode): Promise<void> {
    const child = this.running.get(node.name);
    if (!child) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  private async startProber(intervalMs: number): Promise<void> {
    const child = spawn(...inNamespace(this.lab.clientNs, process.execPath, join(__dirname, 'http-prober.js'), this.lab.vip, String(this.check.port), String(intervalMs)), {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    this.prober = child;
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`http prober exited (${code})`)));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const parsed = JSON.parse(line) as Partial<Answer> & { ready?: boolean };
        if (parsed.ready) resolve();
        else if (typeof parsed.node === 'string' && typeof parsed.atMs === 'number') this.answers.push({ node: parsed.node, atMs: parsed.atMs });
      });
    });
  }

  /** The first answer through the VIP in [fromMs, toMs] from a node other than `former`, as monotonic ms. */
  firstAnswerFrom(fromMs: number, toMs: number, former: string): number | null {
    return this.answers.find((answer) => answer.atMs >= fromMs && answer.atMs <= toMs && answer.node !== former)?.atMs ?? null;
  }

  prune(beforeMs: number): void {
    this.answers = this.answers.filter((answer) => answer.atMs >= beforeMs);
  }

  stop(): void {
    this.prober?.kill('SIGKILL');
    this.prober = null;
    for (const child of this.running.values()) child.kill('SIGKILL');
    this.running.clear();
  }
}
