/**
 * Starts and stops the lab's agents for a chaos run and notices what it did not ask for:
 * an agent that exits by itself is a failure, whatever the fault.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Lab, LabNode } from '../lab';

export interface UnexpectedExit {
  node: string;
  code: number | null;
  signal: string | null;
  atMs: number;
}

interface AgentState {
  child: ChildProcess;
  /** Printed a first log line: past loading, into its own start-up. */
  ready: boolean;
  /** We stopped it on purpose (a fault): its exit is expected. */
  stopping: boolean;
  /** SIGSTOPped by a fault right now. */
  frozen: boolean;
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export class AgentSupervisor {
  private readonly states = new Map<string, AgentState>();
  readonly unexpectedExits: UnexpectedExit[] = [];
  /** Log lines worth a note in the report (errors the agents logged). */
  readonly errorLines: Array<{ node: string; line: string }> = [];

  constructor(private readonly lab: Lab) {}

  start(node: LabNode): void {
    const existing = this.states.get(node.name);
    if (existing && existing.child.exitCode === null && existing.child.signalCode === null) {
      throw new Error(`${node.name}'s agent is already running`);
    }
    const child = this.lab.startAgent(node);
    const state: AgentState = { child, ready: false, stopping: false, frozen: false };
    this.states.set(node.name, state);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      state.ready = true;
      if (line.includes('"level":50') || line.includes('"level":60')) {
        this.errorLines.push({ node: node.name, line: line.slice(0, 500) });
      }
    });
    child.once('exit', (code, signal) => {
      if (!state.stopping) this.unexpectedExits.push({ node: node.name, code, signal, atMs: nowMs() });
    });
  }

  /** Sends a signal and waits for the exit (bounded: a hung shutdown is a failure); undefined if it was not running. */
  async stop(node: LabNode, signal: 'SIGKILL' | 'SIGTERM', timeoutMs = 15_000): Promise<number | null | undefined> {
    const exit = await this.stopWithStatus(node, signal, timeoutMs);
    return exit === null ? undefined : exit.code;
  }

  /** As stop(), with how it ended: an exit code, or the signal that killed it. Null if it was not running. */
  async stopWithStatus(node: LabNode, signal: 'SIGKILL' | 'SIGTERM', timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
    const state = this.states.get(node.name);
    if (!state || !this.alive(node)) return null;
    state.stopping = true;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => state.child.once('exit', (code, by) => resolve({ code, signal: by })));
    state.child.kill(signal);
    // A frozen process only acts on SIGTERM once running again.
    if (signal === 'SIGTERM' && state.frozen) {
      state.child.kill('SIGCONT');
      state.frozen = false;
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const result = await Promise.race([exited, timeout]);
    clearTimeout(timer);
    if (result === 'timeout') {
      state.child.kill('SIGKILL');
      await exited;
      throw new Error(`${node.name}'s agent did not exit within ${timeoutMs} ms of ${signal}`);
    }
    return result;
  }

  /** SIGSTOP or SIGCONT the agent process itself (not its helpers). */
  signal(node: LabNode, signal: 'SIGSTOP' | 'SIGCONT'): boolean {
    const state = this.states.get(node.name);
    if (!state || !this.alive(node)) return false;
    state.child.kill(signal);
    state.frozen = signal === 'SIGSTOP';
    return true;
  }

  /** Someone else killed it (e.g. every process of a dead node): its exit is expected. */
  expectExit(node: LabNode): void {
    const state = this.states.get(node.name);
    if (state) state.stopping = true;
  }

  alive(node: LabNode): boolean {
    const child = this.states.get(node.name)?.child;
    return !!child && child.exitCode === null && child.signalCode === null;
  }

  /** Running, not frozen, and into its own start-up. */
  healthy(node: LabNode): boolean {
    const state = this.states.get(node.name);
    return !!state && this.alive(node) && state.ready && !state.frozen;
  }

  /** Why a node's agent is not healthy, for messages. */
  describe(node: LabNode): string {
    const state = this.states.get(node.name);
    if (!state) return `${node.name}: never started`;
    if (!this.alive(node)) {
      const { exitCode, signalCode } = state.child;
      return `${node.name}: ${state.stopping ? 'stopped' : 'exited by itself'} (code ${exitCode}, signal ${signalCode})`;
    }
    if (state.frozen) return `${node.name}: frozen`;
    return state.ready ? `${node.name}: running` : `${node.name}: starting`;
  }

  pid(node: LabNode): number | null {
    return this.alive(node) ? (this.states.get(node.name)!.child.pid ?? null) : null;
  }

  /** Waits for every exit we asked for; used at the end. */
  async stopAll(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    await Promise.all(this.lab.nodes.map((node) => this.stop(node, signal).catch(() => null)));
  }
}
