/**
 * keepalived (VRRPv3) on the lab's nodes, as the reference vipd is measured against. One
 * vrrp_instance per node on mgmt-br, the same virtual router, and the lab's VIP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inNamespace, logTo, type Lab, type LabNode } from './lab';
import { namespacePids } from './faults';
import { alive, run, waitFor } from './shell';

export interface KeepalivedOptions {
  /** VRRP advertisement interval in seconds; VRRPv3 takes centiseconds (0.01 steps). */
  advertIntSeconds: number;
  /**
   * 'distinct' (default): priorities 100, 150, 200 and nopreempt. With equal priorities every
   * backup's timer runs out at once, two become master, and the loser's gratuitous ARPs can
   * leave clients on a node that drops the VIP a moment later. nopreempt: a returning node
   * does not take the VIP back (vipd never does), so a trial sees one move.
   */
  priorities?: 'distinct' | 'equal';
  virtualRouterId?: number;
}

/** A vrrp_script the instance tracks (weight 0: a failing script puts the instance in FAULT and the master lets go). */
export interface TrackScript {
  /** The command line keepalived runs (no shell). */
  script: string;
  intervalSeconds: number;
  timeoutSeconds: number;
  fall: number;
  rise: number;
}

/** Priorities 100, 150, 200: skew times 10 ms apart even at advert_int 0.05 s. */
const BASE_PRIORITY = 100;
const PRIORITY_STEP = 50;

interface Running {
  child: ChildProcess;
  exited: Promise<number | null>;
}

/** VRRPv3 advertises in centiseconds. */
export function isCentiseconds(seconds: number): boolean {
  return seconds > 0 && Math.abs(seconds * 100 - Math.round(seconds * 100)) < 1e-9;
}

/** VRRPv3 (RFC 5798 §6.1): skew time and master down interval for a backup. */
export function masterDownIntervalMs(advertIntSeconds: number, priority = 100): number {
  const advertMs = advertIntSeconds * 1000;
  return 3 * advertMs + ((256 - priority) * advertMs) / 256;
}

export class KeepalivedCluster {
  private readonly running = new Map<string, Running>();
  readonly priorities: 'distinct' | 'equal';
  readonly virtualRouterId: number;
  /** Written into the config from the next start (or check) on. */
  trackScript: TrackScript | null = null;

  constructor(
    private readonly lab: Lab,
    readonly options: KeepalivedOptions,
  ) {
    this.priorities = options.priorities ?? 'distinct';
    this.virtualRouterId = options.virtualRouterId ?? 51;
    if (!isCentiseconds(options.advertIntSeconds)) {
      throw new Error(`advert_int ${options.advertIntSeconds}: VRRPv3 needs a positive multiple of 0.01 s`);
    }
  }

  configPath(node: LabNode): string {
    return join(this.lab.dir, `keepalived-${node.name}.conf`);
  }
  logPath(node: LabNode): string {
    return join(this.lab.dir, `keepalived-${node.name}.log`);
  }
  private pidPath(node: LabNode): string {
    return join(this.lab.dir, `keepalived-${node.name}.pid`);
  }
  private vrrpPidPath(node: LabNode): string {
    return join(this.lab.dir, `keepalived-${node.name}-vrrp.pid`);
  }

  priority(node: LabNode): number {
    if (this.priorities === 'equal') return BASE_PRIORITY;
    return BASE_PRIORITY + PRIORITY_STEP * this.lab.nodes.indexOf(node);
  }

  /** The longest detection time of any backup (the lowest priority's). */
  get masterDownIntervalMs(): number {
    return masterDownIntervalMs(this.options.advertIntSeconds, BASE_PRIORITY);
  }

  writeConfig(node: LabNode): string {
    const track = this.trackScript;
    const text = [
      'global_defs {',
      `  router_id ${node.name}`,
      '  vrrp_version 3',
      // keepalived runs scripts as root only with script security on (and then checks the script's path is root's alone).
      ...(track ? ['  enable_script_security', '  script_user root'] : []),
      '}',
      ...(track
        ? ['vrrp_script service {', `  script "${track.script}"`, `  interval ${track.intervalSeconds}`, `  timeout ${track.timeoutSeconds}`, `  fall ${track.fall}`, `  rise ${track.rise}`, '}']
        : []),
      'vrrp_instance VIP {',
      '  state BACKUP',
      '  interface mgmt-br',
      `  virtual_router_id ${this.virtualRouterId}`,
      `  priority ${this.priority(node)}`,
      ...(this.priorities === 'distinct' ? ['  nopreempt'] : []),
      `  advert_int ${this.options.advertIntSeconds}`,
      '  garp_master_refresh 0',
      ...(track ? ['  track_script {', '    service', '  }'] : []),
      '  virtual_ipaddress {',
      `    ${this.lab.vip}/32 dev mgmt-br`,
      '  }',
      '}',
      '',
    ].join('\n');
    const path = this.configPath(node);
    writeFileSync(path, text);
    return path;
  }

  /** Checks the config with keepalived itself; throws with its complaint. */
  async checkConfig(node: LabNode): Promise<void> {
    // Inside the node's namespace: keepalived checks that mgmt-br exists.
    const result = await run(...inNamespace(node.namespace, 'keepalived', '--config-test', '--use-file', this.writeConfig(node)));
    if (result.code !== 0) throw new Error(`keepalived rejects ${this.configPath(node)}: ${(result.stderr || result.stdout).trim()}`);
  }

  isRunning(node: LabNode): boolean {
    return this.running.has(node.name);
  }

  private readPid(path: string): number | null {
    try {
      const pid = Number(readFileSync(path, 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  /** keepalived's own processes on the node: the parent and its VRRP child. */
  pids(node: LabNode): number[] {
    const parent = this.running.get(node.name)?.child.pid;
    const vrrp = this.readPid(this.vrrpPidPath(node));
    return [parent, vrrp].filter((pid): pid is number => pid !== undefined && pid !== null && alive(pid));
  }

  /** Starts keepalived on the node and resolves once its VRRP child runs. */
  async start(node: LabNode, timeoutMs = 10_000): Promise<void> {
    if (this.running.has(node.name)) return;
    this.writeConfig(node);
    // keepalived refuses to start while a pid file names a live process: clear stale ones.
    rmSync(this.pidPath(node), { force: true });
    rmSync(this.vrrpPidPath(node), { force: true });
    const [command, args] = inNamespace(
      node.namespace,
      'keepalived',
      '--dont-fork',
      '--log-console',
      '--no-syslog',
      '--vrrp',
      // No --dont-respawn: the parent restarts a dead VRRP child, as in production.
      '--use-file', this.configPath(node),
      '--pid', this.pidPath(node),
      '--vrrp_pid', this.vrrpPidPath(node),
    );
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    logTo(this.logPath(node), child);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const entry: Running = { child, exited };
    this.running.set(node.name, entry);
    void exited.then(() => {
      if (this.running.get(node.name) === entry) this.running.delete(node.name);
    });
    await waitFor(
      `keepalived's VRRP process on ${node.name}`,
      () => {
        if (!this.running.has(node.name)) throw new Error(`keepalived on ${node.name} exited; see ${this.logPath(node)}`);
        const vrrp = this.readPid(this.vrrpPidPath(node));
        return vrrp !== null && alive(vrrp);
      },
      timeoutMs,
      20,
    );
  }

  async startAll(): Promise<void> {
    await Promise.all(this.lab.nodes.map((node) => this.start(node)));
  }

  /**
   * SIGTERM: keepalived's clean stop (the master sends a priority-0 advertisement and
   * removes the VIP). SIGKILL: parent and VRRP child die at once and the VIP stays on
   * the interface, as after a crash.
   */
  async stop(node: LabNode, signal: 'SIGTERM' | 'SIGKILL', timeoutMs = 10_000): Promise<void> {
    const entry = this.running.get(node.name);
    const vrrp = this.readPid(this.vrrpPidPath(node));
    if (signal === 'SIGKILL') {
      // Parent stopped first, so it can neither respawn the child nor hand it a SIGTERM
      // on its way out: both die as in a crash.
      entry?.child.kill('SIGSTOP');
      if (vrrp !== null) tryKill(vrrp, 'SIGKILL');
      entry?.child.kill('SIGKILL');
    } else {
      entry?.child.kill('SIGTERM');
    }
    if (entry) {
      await Promise.race([entry.exited, new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
      if (this.running.get(node.name) === entry) {
        entry.child.kill('SIGKILL');
        await entry.exited;
      }
    }
    if (vrrp !== null) {
      await waitFor(`keepalived's VRRP process on ${node.name} to exit`, () => !alive(vrrp), timeoutMs, 10).catch(() => {
        tryKill(vrrp, 'SIGKILL');
      });
    }
  }

  /** SIGKILL of the VRRP child only; the parent respawns it. Returns the killed pid. */
  killVrrp(node: LabNode): number | null {
    const vrrp = this.readPid(this.vrrpPidPath(node));
    if (vrrp !== null) tryKill(vrrp, 'SIGKILL');
    return vrrp;
  }

  /** Waits until the parent runs a VRRP child other than `former`. */
  async waitRespawned(node: LabNode, former: number | null, timeoutMs = 10_000): Promise<void> {
    await waitFor(
      `keepalived on ${node.name} to respawn its VRRP process`,
      () => {
        if (!this.running.has(node.name)) throw new Error(`keepalived on ${node.name} exited; see ${this.logPath(node)}`);
        const vrrp = this.readPid(this.vrrpPidPath(node));
        return vrrp !== null && vrrp !== former && alive(vrrp);
      },
      timeoutMs,
      20,
    );
  }

  /** Kills every keepalived in the lab's node namespaces, including any not started here. */
  async stopAll(): Promise<void> {
    for (const node of this.lab.nodes) {
      if (this.running.has(node.name)) await this.stop(node, 'SIGKILL', 2_000);
      for (const pid of await namespacePids(node.namespace)) {
        if (processName(pid) === 'keepalived') tryKill(pid, 'SIGKILL');
      }
    }
  }
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

function processName(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

