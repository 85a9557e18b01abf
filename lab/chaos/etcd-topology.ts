/**
 * The etcd a chaos run breaks, as a parameter: the faults ask the topology for members and
 * the leader, so the same fault list runs against one member in its own namespace or one
 * member per node (`vipd init` + `vipd join`, embedded-etcd-topology.ts).
 */
import { closeSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../lab';
import { run } from '../shell';
import { EmbeddedEtcdTopology } from './embedded-etcd-topology';
import { decodeKvs } from './state';

export type EtcdTopologyKind = 'single' | 'embedded';

export interface EtcdTopology {
  readonly kind: EtcdTopologyKind;
  /** Member names; a majority of them must be healthy for the cluster to be. */
  readonly members: readonly string[];
  /** Starts every member and waits until etcd answers. */
  start(): Promise<void>;
  /** The member that is raft leader now. */
  leader(): Promise<string>;
  isRunning(member: string): boolean;
  /** SIGSTOP or SIGCONT; false if the member is not running. */
  signal(member: string, signal: 'SIGSTOP' | 'SIGCONT'): boolean;
  /** SIGKILL, waiting for the exit. */
  kill(member: string): Promise<void>;
  /** Starts a member that is not running, on its existing data dir; waits until it answers. */
  restart(member: string): Promise<void>;
  /** Fills the filesystem under the member's data dir to the last byte. */
  fillDataDir(member: string): Promise<void>;
  freeDataDir(member: string): Promise<void>;
  /** Whether the member answers a health check within about a second. */
  answers(member: string): Promise<boolean>;
  /** Every key under a prefix; throws if etcd does not answer. */
  dump(prefix: string): Promise<Array<{ key: string; value: string }>>;
  /** What else a fault on the member holds, so no concurrent fault touches it (fault resources). */
  memberResources(member: string): string[];
}

/** Big enough for etcd's preallocated WAL segments (64 MiB each, the next one made in advance). */
const TMPFS_MB = 256;
const FILLER = 'chaos-filler';

/** Today's lab: one etcd member in its own namespace, data dir on a tmpfs of its own. */
export class SingleMemberEtcd implements EtcdTopology {
  readonly kind = 'single' as const;
  readonly members = ['lab'] as const;

  constructor(private readonly lab: Lab) {}

  async start(): Promise<void> {
    await this.lab.mountEtcdTmpfs(TMPFS_MB);
    await this.lab.startEtcd();
  }

  async leader(): Promise<string> {
    return 'lab';
  }

  isRunning(member: string): boolean {
    this.check(member);
    return this.lab.etcdPid() !== null;
  }

  signal(member: string, signal: 'SIGSTOP' | 'SIGCONT'): boolean {
    this.check(member);
    return this.lab.signalEtcd(signal);
  }

  async kill(member: string): Promise<void> {
    this.check(member);
    // A stopped process still dies of SIGKILL; the exit is what stopEtcd waits for.
    await this.lab.stopEtcd('SIGKILL');
  }

  async restart(member: string): Promise<void> {
    this.check(member);
    await this.lab.stopEtcd('SIGKILL');
    await this.lab.startEtcd();
  }

  async fillDataDir(member: string): Promise<void> {
    this.check(member);
    const path = join(this.lab.etcdDataDir, FILLER);
    const fd = openSync(path, 'a');
    try {
      // Large writes first, then ever smaller ones, until not even one byte fits.
      const chunk = Buffer.alloc(1 << 20);
      for (let size = chunk.length; size >= 1; size = Math.floor(size / 2)) {
        for (;;) {
          try {
            writeSync(fd, chunk, 0, size);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
            break;
          }
        }
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Bytes still free under the data dir (0 once filled). */
  freeBytes(): number {
    const { bavail, bsize } = statfsSync(this.lab.etcdDataDir);
    return Number(bavail) * Number(bsize);
  }

  async freeDataDir(member: string): Promise<void> {
    this.check(member);
    rmSync(join(this.lab.etcdDataDir, FILLER), { force: true });
  }

  async answers(member: string): Promise<boolean> {
    this.check(member);
    if (this.lab.etcdPid() === null) return false;
    const result = await run('ip', ['netns', 'exec', this.lab.etcdNs, 'etcdctl', '--endpoints', this.lab.etcdEndpoint,
      '--dial-timeout=1s', '--command-timeout=1s', 'endpoint', 'health'], 3000);
    return result.code === 0;
  }

  async dump(prefix: string): Promise<Array<{ key: string; value: string }>> {
    return decodeKvs(await this.lab.etcdctl('--command-timeout=3s', 'get', '--prefix', prefix, '-w', 'json'));
  }

  memberResources(): string[] {
    return [];
  }

  private check(member: string): void {
    if (member !== 'lab') throw new Error(`no etcd member ${member} (single-member topology: lab)`);
  }
}

/**
 * The etcd fault variants that need more than one member and are not run yet. Listed by
 * `chaos --list-faults`.
 */
export const PENDING_MULTI_MEMBER_FAULTS: ReadonlyArray<{ name: string; what: string }> = [
  { name: 'etcd-majority-down', what: 'lose quorum: every holder drops the VIP by its fencing deadline, none takes it' },
  { name: 'etcd-member-partition', what: 'cut one member off in the switch while its node agent still runs' },
  { name: 'etcd-disk-full-follower', what: 'fill one follower\'s data dir while the leader keeps committing (embedded: needs a tmpfs per member)' },
];

export function createEtcdTopology(kind: EtcdTopologyKind, lab: Lab, config: Record<string, unknown>): EtcdTopology {
  return kind === 'single' ? new SingleMemberEtcd(lab) : new EmbeddedEtcdTopology(lab, config);
}
