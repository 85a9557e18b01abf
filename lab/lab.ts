/**
 * A lab of network namespaces: one L2 segment (a bridge in its own namespace), N nodes
 * each with an interface named mgmt-br, a client, and a namespace for etcd. Addresses come
 * only from 192.0.2.0/24 and 2001:db8::/32, and nothing routes out.
 *
 * Every lab has a unique prefix, so runs can share a machine, and records its owner's pid
 * so a later run can sweep what a killed run left behind.
 */
import { sweepStaleHookDirectories } from '../src/holding/udhcpc-hook';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify as toYaml } from 'yaml';
import type { CapturedAnnouncement } from './frame-capture';
import { mustRun, run, runSync, waitFor } from './shell';

const REGISTRY = '/run/vipd-lab';

/**
 * Arguments that run a command inside a namespace. nsenter execs the command, so the pid we
 * hold is the command's own; `ip netns exec` forks and would leave it running after a kill.
 */
export function inNamespace(namespace: string, command: string, ...args: string[]): [string, string[]] {
  return ['nsenter', [`--net=/run/netns/${namespace}`, '--', command, ...args]];
}
// The one-file build (scripts/bundle.ts): what the package runs.
const CLI = join(__dirname, '..', 'vipd.js');

export const VIP4 = '192.0.2.10';
export const VIP6 = '2001:db8::10';
export const ETCD_IP = '192.0.2.2';
export const CLIENT_IP = '192.0.2.100';
export const DHCP_SERVER_IP = '192.0.2.3';
export const WHOAMI_PORT = 7000;

export interface LabNode {
  name: string;
  namespace: string;
  ip: string;
  ip6: string;
  configPath: string;
  agent: ChildProcess | null;
  logPath: string;
}

export interface LabOptions {
  nodes: number;
  /** Extra YAML for every node's config, merged over the defaults. */
  config?: Record<string, unknown>;
  /** Use the IPv6 VIP instead of the IPv4 one. */
  ipv6?: boolean;
}

export interface AnnouncementCapture {
  /** Every announcement seen so far, in order. */
  seen: CapturedAnnouncement[];
  stop: () => void;
}

/** An etcd with TLS and `--client-cert-auth` (lab/etcd-pki.ts makes the files); `client` is what etcdctl uses. */
export interface EtcdTls {
  ca: string;
  serverCert: string;
  serverKey: string;
  client: { cert: string; key: string };
  /**
   * What etcd makes of a client's certificate: `user` (default) requires one and takes the
   * user from its CN (--trusted-ca-file, --client-cert-auth); `checked` requires one but takes
   * no user from it (--trusted-ca-file alone); `none` asks for none.
   */
  clientCertificates?: 'user' | 'checked' | 'none';
}

interface ProcessHandle {
  child: ChildProcess;
  exited: Promise<number | null>;
}

/**
 * Sends a child's stdout and stderr to a log file. pipe() would end the file when the first
 * of the two ends and then fail on the other's late output ("write after end"); the file is
 * ended only once the child has closed both.
 */
export function logTo(path: string, ...children: ChildProcess[]): void {
  const log = createWriteStream(path, { flags: 'a' });
  let open = children.length;
  for (const child of children) {
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    child.once('close', () => {
      if (--open === 0) log.end();
    });
  }
}

function track(child: ChildProcess): ProcessHandle {
  return { child, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

/** Removes namespaces and processes left by labs whose owner process is gone. */
export function sweepAbandonedLabs(): void {
  if (!existsSync(REGISTRY)) return;
  for (const prefix of readdirSync(REGISTRY)) {
    const owner = Number(readFileSync(join(REGISTRY, prefix), 'utf8'));
    let alive = false;
    try {
      process.kill(owner, 0);
      alive = true;
    } catch {
      alive = false;
    }
    if (!alive) destroyNamespaces(prefix);
  }
}

function labNamespaces(prefix: string): string[] {
  try {
    return readdirSync('/run/netns').filter((name) => name.startsWith(`${prefix}-`));
  } catch {
    return [];
  }
}

/** Unmounts what a lab mounted under its directory (e.g. the tmpfs etcd data dir), lazily so nothing blocks. */
function unmountLabFilesystems(prefix: string): void {
  let mounts = '';
  try {
    mounts = readFileSync('/proc/mounts', 'utf8');
  } catch {
    return;
  }
  for (const line of mounts.split('\n')) {
    const mountPoint = line.split(' ')[1];
    if (mountPoint?.includes(`/vipd-${prefix}-`)) runSync('umount', ['-l', mountPoint]);
  }
}

/** Synchronous, so it can also run from an exit handler. */
function destroyNamespaces(prefix: string): void {
  unmountLabFilesystems(prefix);
  for (const namespace of labNamespaces(prefix)) {
    // Processes keep a namespace alive after `ip netns del`: kill them first.
    runSync('sh', ['-c', `ip netns pids ${namespace} | xargs -r kill -9`]);
    runSync('ip', ['netns', 'del', namespace]);
  }
  try {
    unlinkSync(join(REGISTRY, prefix));
  } catch {
    // Already gone.
  }
}

export class Lab {
  readonly prefix: string;
  readonly dir: string;
  readonly nodes: LabNode[] = [];
  readonly vip: string;
  private etcd: ProcessHandle | null = null;
  private etcdTls: EtcdTls | null = null;
  private dhcpServer: ProcessHandle | null = null;
  private readonly helpers: ChildProcess[] = [];
  private readonly etcdMembers: ChildProcess[] = [];
  private destroyed = false;
  private readonly onExit = (): void => this.destroySync();
  private readonly onSignal = (): void => {
    this.destroySync();
    process.exit(130);
  };

  private constructor(private readonly options: LabOptions) {
    this.prefix = `vl${randomBytes(3).toString('hex')}`;
    this.dir = mkdtempSync(join(tmpdir(), `vipd-${this.prefix}-`));
    this.vip = options.ipv6 ? VIP6 : VIP4;
  }

  get switchNs(): string {
    return `${this.prefix}-sw`;
  }
  get clientNs(): string {
    return `${this.prefix}-cl`;
  }
  get etcdNs(): string {
    return `${this.prefix}-db`;
  }
  get dhcpNs(): string {
    return `${this.prefix}-dh`;
  }
  get etcdEndpoint(): string {
    return `${this.etcdTls ? 'https' : 'http'}://${ETCD_IP}:2379`;
  }

  /** etcdctl's flags for the lab's etcd: its TLS client certificate, if it has TLS. */
  private get etcdctlTls(): string[] {
    const tls = this.etcdTls;
    return tls ? [`--cacert=${tls.ca}`, `--cert=${tls.client.cert}`, `--key=${tls.client.key}`] : [];
  }

  static async create(options: LabOptions): Promise<Lab> {
    sweepAbandonedLabs();
    const lab = new Lab(options);
    mkdirSync(REGISTRY, { recursive: true });
    writeFileSync(join(REGISTRY, lab.prefix), String(process.pid));
    process.once('exit', lab.onExit);
    process.once('SIGINT', lab.onSignal);
    process.once('SIGTERM', lab.onSignal);
    try {
      await lab.build();
    } catch (error) {
      await lab.destroy();
      throw error;
    }
    return lab;
  }

  private async ns(namespace: string, ...args: string[]): Promise<string> {
    return await mustRun('ip', ['-n', namespace, ...args]);
  }

  /** Joins a namespace to the switch through a veth pair, with the given addresses. */
  private async plug(namespace: string, port: string, inside: string, addresses: string[]): Promise<void> {
    await mustRun('ip', ['netns', 'add', namespace]);
    await this.ns(namespace, 'link', 'set', 'lo', 'up');
    await mustRun('ip', ['link', 'add', inside, 'netns', namespace, 'type', 'veth', 'peer', 'name', port, 'netns', this.switchNs]);
    await this.ns(this.switchNs, 'link', 'set', port, 'master', 'br0');
    await this.ns(this.switchNs, 'link', 'set', port, 'up');
    for (const address of addresses) {
      // nodad: lab addresses are unique by construction, and DAD would delay the test by a second.
      await this.ns(namespace, 'addr', 'add', address, 'dev', inside, ...(address.includes(':') ? ['nodad'] : []));
    }
    await this.ns(namespace, 'link', 'set', inside, 'up');
  }

  private async build(): Promise<void> {
    await mustRun('ip', ['netns', 'add', this.switchNs]);
    await this.ns(this.switchNs, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    await this.ns(this.switchNs, 'link', 'set', 'br0', 'up');
    await this.plug(this.etcdNs, 'db', 'eth0', [`${ETCD_IP}/24`, '2001:db8::2/64']);
    await this.plug(this.clientNs, 'cl', 'eth0', [`${CLIENT_IP}/24`, '2001:db8::64/64']);
    for (let i = 1; i <= this.options.nodes; i += 1) {
      const node: LabNode = {
        name: `node-${i}`,
        namespace: `${this.prefix}-n${i}`,
        ip: `192.0.2.${10 + i}`,
        ip6: `2001:db8::${10 + i}`,
        configPath: join(this.dir, `node-${i}.yaml`),
        agent: null,
        logPath: join(this.dir, `node-${i}.log`),
      };
      await this.plug(node.namespace, `n${i}`, 'mgmt-br', [`${node.ip}/24`, `${node.ip6}/64`]);
      this.writeConfig(node);
      this.startWhoami(node);
      this.nodes.push(node);
    }
  }

  node(name: string): LabNode {
    const found = this.nodes.find((candidate) => candidate.name === name);
    if (!found) throw new Error(`no lab node ${name}`);
    return found;
  }

  /** The config a node's agent runs with; `extra` is merged over the lab defaults. */
  writeConfig(node: LabNode, extra: Record<string, unknown> = {}): string {
    const config = {
      cluster: 'lab',
      node: { name: node.name, interface: 'mgmt-br' },
      vip: { mode: 'static', address: this.vip },
      etcd: { endpoints: [this.etcdEndpoint] },
      ...this.options.config,
      ...extra,
    };
    writeFileSync(node.configPath, toYaml(config));
    return node.configPath;
  }

  /** A tiny TCP server per node that answers with the node's name: it shows which node the client reached. */
  private startWhoami(node: LabNode): void {
    const script = `require('net').createServer((s) => s.end(${JSON.stringify(node.name)})).listen(${WHOAMI_PORT}, '::')`;
    const child = spawn(...inNamespace(node.namespace, process.execPath, '-e', script), { stdio: 'ignore' });
    this.helpers.push(child);
  }

  async startEtcd(options: { tls?: EtcdTls } = {}): Promise<void> {
    this.etcdTls = options.tls ?? null;
    const tls = this.etcdTls
      ? ['--cert-file', this.etcdTls.serverCert, '--key-file', this.etcdTls.serverKey,
          ...(this.etcdTls.clientCertificates === 'none' ? [] : ['--trusted-ca-file', this.etcdTls.ca]),
          ...((this.etcdTls.clientCertificates ?? 'user') === 'user' ? ['--client-cert-auth'] : [])]
      : [];
    const dataDir = join(this.dir, 'etcd');
    const peer = 'http://127.0.0.1:2380';
    const child = spawn(
      ...inNamespace(
        this.etcdNs,
        'etcd',
        '--name', 'lab',
        '--data-dir', dataDir,
        '--listen-client-urls', this.etcdEndpoint,
        '--advertise-client-urls', this.etcdEndpoint,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `lab=${peer}`,
        '--heartbeat-interval', '100',
        '--election-timeout', '1000',
        ...tls,
      ),
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    logTo(join(this.dir, 'etcd.log'), child);
    this.etcd = track(child);
    await waitFor(
      'etcd to answer',
      async () => {
        const result = await run('ip', ['netns', 'exec', this.etcdNs, 'etcdctl', '--endpoints', this.etcdEndpoint, ...this.etcdctlTls, '--dial-timeout=1s', 'endpoint', 'health']);
        return result.code === 0;
      },
      20_000,
      100,
    );
  }

  /**
   * Starts an etcd cluster of `size` members in the etcd namespace (client ports 2379,
   * 12379, 22379...; peers on loopback) instead of startEtcd()'s single member. Returns
   * the members' client URLs; destroy() stops them.
   */
  async startEtcdCluster(size: number): Promise<string[]> {
    const members = Array.from({ length: size }, (_, i) => ({
      name: `member-${i}`,
      client: `http://${ETCD_IP}:${2379 + i * 10_000}`,
      peer: `http://127.0.0.1:${2380 + i * 10_000}`,
    }));
    const initialCluster = members.map((member) => `${member.name}=${member.peer}`).join(',');
    for (const member of members) {
      const child = spawn(
        ...inNamespace(
          this.etcdNs,
          'etcd',
          '--name', member.name,
          '--data-dir', join(this.dir, `etcd-${member.name}`),
          '--listen-client-urls', member.client,
          '--advertise-client-urls', member.client,
          '--listen-peer-urls', member.peer,
          '--initial-advertise-peer-urls', member.peer,
          '--initial-cluster', initialCluster,
          '--heartbeat-interval', '100',
          '--election-timeout', '1000',
        ),
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      this.helpers.push(child);
      this.etcdMembers.push(child);
    }
    logTo(join(this.dir, 'etcd.log'), ...this.etcdMembers);
    const endpoints = members.map((member) => member.client);
    await waitFor(
      'every etcd member to answer',
      async () => (await run('ip', ['netns', 'exec', this.etcdNs, 'etcdctl', '--endpoints', endpoints.join(','), '--dial-timeout=1s', 'endpoint', 'health'])).code === 0,
      30_000,
      200,
    );
    return endpoints;
  }

  /** The pid of member `index` of startEtcdCluster(). */
  etcdMemberPid(index: number): number {
    const pid = this.etcdMembers[index]?.pid;
    if (pid === undefined) throw new Error(`no etcd member ${index}`);
    return pid;
  }

  /**
   * Starts dnsmasq as the segment's DHCP server (in its own namespace, plugged in on first
   * use), with optional reservations. dnsmasq's shortest lease is two minutes.
   */
  async startDhcpServer(options: { reservations?: Array<{ mac: string; ip: string }>; leaseTime?: string } = {}): Promise<void> {
    if (!existsSync(`/run/netns/${this.dhcpNs}`)) await this.plug(this.dhcpNs, 'dh', 'eth0', [`${DHCP_SERVER_IP}/24`]);
    const leaseTime = options.leaseTime ?? '2m';
    const args = [
      '--no-daemon', '--port=0', '--interface=eth0', '--bind-interfaces', '--dhcp-authoritative',
      `--dhcp-range=192.0.2.50,192.0.2.99,255.255.255.0,${leaseTime}`,
      `--dhcp-leasefile=${join(this.dir, 'dnsmasq.leases')}`,
      `--pid-file=${join(this.dir, 'dnsmasq.pid')}`,
      '--log-dhcp', '--log-facility=-',
      ...(options.reservations ?? []).map((entry) => `--dhcp-host=${entry.mac},${entry.ip}`),
    ];
    const child = spawn(...inNamespace(this.dhcpNs, '/usr/sbin/dnsmasq', ...args), { stdio: ['ignore', 'pipe', 'pipe'] });
    logTo(join(this.dir, 'dnsmasq.log'), child);
    this.dhcpServer = track(child);
    await waitFor('dnsmasq to listen', async () => (await run('ip', ['netns', 'exec', this.dhcpNs, 'ss', '-lun'])).stdout.includes(':67 '), 10_000);
  }

  async stopDhcpServer(): Promise<void> {
    if (!this.dhcpServer) return;
    this.dhcpServer.child.kill('SIGKILL');
    await this.dhcpServer.exited;
    this.dhcpServer = null;
  }

  /** Which nodes have a vipd macvlan (DHCP mode) right now. */
  async nodesWithMacvlan(): Promise<string[]> {
    const found: string[] = [];
    for (const node of this.nodes) {
      const result = await run('ip', ['-n', node.namespace, 'link', 'show', 'vipd-vip']);
      if (result.code === 0) found.push(node.name);
    }
    return found;
  }

  async stopEtcd(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.etcd) return;
    this.etcd.child.kill(signal);
    await this.etcd.exited;
    this.etcd = null;
  }

  /** etcd's data directory (what startEtcd passes as --data-dir). */
  get etcdDataDir(): string {
    return join(this.dir, 'etcd');
  }

  /**
   * Puts etcd's data directory on a tmpfs of its own, so a fault can fill it. Call before
   * startEtcd(); destroy() unmounts it (and so does the sweep of an abandoned lab).
   */
  async mountEtcdTmpfs(sizeMb: number): Promise<string> {
    mkdirSync(this.etcdDataDir, { recursive: true });
    await mustRun('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0700`, `vipd-${this.prefix}-etcd`, this.etcdDataDir]);
    return this.etcdDataDir;
  }

  /** The pid of the running etcd, or null when none runs (never started, stopped, or died by itself). */
  etcdPid(): number | null {
    const child = this.etcd?.child;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return null;
    return child.pid;
  }

  /** Sends a signal to etcd without waiting (SIGSTOP/SIGCONT); false if etcd is not running. */
  signalEtcd(signal: NodeJS.Signals): boolean {
    const pid = this.etcdPid();
    if (pid === null) return false;
    process.kill(pid, signal);
    return true;
  }

  /**
   * Plugs one more namespace into the segment (a DNS server, a stranger's HTTPS server). It
   * carries the lab's prefix, so destroy() removes it and everything running in it.
   */
  async addStation(suffix: string, addresses: string[]): Promise<string> {
    const namespace = `${this.prefix}-${suffix}`;
    await this.plug(namespace, suffix, 'eth0', addresses);
    return namespace;
  }

  async etcdctl(...args: string[]): Promise<string> {
    return await mustRun('ip', ['netns', 'exec', this.etcdNs, 'etcdctl', '--endpoints', this.etcdEndpoint, ...this.etcdctlTls, ...args]);
  }

  /** Starts a node's agent; its log (JSON lines) goes to node.logPath. */
  startAgent(node: LabNode, configPath = node.configPath): ChildProcess {
    const child = spawn(...inNamespace(node.namespace, process.execPath, CLI, 'run', '--config', configPath), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    logTo(node.logPath, child);
    node.agent = child;
    child.once('exit', () => {
      if (node.agent === child) node.agent = null;
    });
    return child;
  }

  async stopAgent(node: LabNode, signal: NodeJS.Signals): Promise<number | null> {
    const child = node.agent;
    if (!child) return null;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill(signal);
    return await exited;
  }

  /** Runs the vipd CLI inside a node's namespace. */
  async vipd(node: LabNode, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return await run(...inNamespace(node.namespace, process.execPath, CLI, ...args));
  }

  /** The MAC of a node's management interface. */
  async mac(node: LabNode): Promise<string> {
    const out = await this.ns(node.namespace, '-j', 'link', 'show', 'mgmt-br');
    return (JSON.parse(out) as Array<{ address: string }>)[0]?.address ?? '';
  }

  /** The MAC the client's neighbour table has for the VIP, if any. */
  async clientNeighbourMac(address = this.vip): Promise<string | null> {
    const out = await this.ns(this.clientNs, '-j', 'neigh', 'show', address);
    return (JSON.parse(out) as Array<{ lladdr?: string }>)[0]?.lladdr ?? null;
  }

  /** Starts capturing the VIP's announcements as the client sees them. */
  async captureAnnouncements(): Promise<AnnouncementCapture> {
    const child = spawn(...inNamespace(this.clientNs, process.execPath, join(__dirname, 'frame-capture.js'), 'eth0', this.vip), {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.helpers.push(child);
    const seen: CapturedAnnouncement[] = [];
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const parsed = JSON.parse(line) as CapturedAnnouncement | { ready: true };
        if ('ready' in parsed) resolve();
        else seen.push(parsed);
      });
    });
    return { seen, stop: () => child.kill('SIGKILL') };
  }

  async setLink(node: LabNode, up: boolean): Promise<void> {
    await this.ns(node.namespace, 'link', 'set', 'mgmt-br', up ? 'up' : 'down');
  }

  /** Which nodes have the VIP configured right now (one `ip` call per node). */
  async holders(address = this.vip): Promise<string[]> {
    const holders: string[] = [];
    for (const node of this.nodes) {
      const out = await this.ns(node.namespace, '-j', 'addr', 'show');
      const links = JSON.parse(out) as Array<{ addr_info?: Array<{ local: string }> }>;
      if (links.some((link) => link.addr_info?.some((entry) => entry.local === address))) holders.push(node.name);
    }
    return holders;
  }

  /** Pings the VIP once from the client. */
  async clientPing(address = this.vip): Promise<boolean> {
    const result = await run('ip', ['netns', 'exec', this.clientNs, 'ping', '-c', '1', '-W', '1', address]);
    return result.code === 0;
  }

  /** Opens a TCP connection from the client to the VIP; returns the name of the node that answered. */
  async clientWhoami(address = this.vip): Promise<string | null> {
    const script = `exec 3<>/dev/tcp/${address}/${WHOAMI_PORT} && cat <&3`;
    // --norc: bash sources ~/.bashrc when stdin is a socket (it takes that for sshd), and
    // Node's child pipes are socketpairs; a slow rc (pyenv init) ran past the 2 s limit.
    const result = await run('ip', ['netns', 'exec', this.clientNs, 'timeout', '2', 'bash', '--norc', '--noprofile', '-c', script]);
    return result.code === 0 ? result.stdout.trim() : null;
  }

  /** Waits until the client both pings the VIP and reaches `expected` (any node if omitted) over TCP. */
  async waitClientReaches(expected: string | undefined, timeoutMs = 20_000, address = this.vip): Promise<string> {
    return await waitFor(
      `the client to reach ${expected ?? 'the VIP'} at ${address}`,
      async () => {
        if (!(await this.clientPing(address))) return undefined;
        const name = await this.clientWhoami(address);
        return name && (!expected || name === expected) ? name : undefined;
      },
      timeoutMs,
      100,
    );
  }

  async destroy(): Promise<void> {
    this.destroySync();
  }

  private destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.removeListener('exit', this.onExit);
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
    for (const node of this.nodes) node.agent?.kill('SIGKILL');
    for (const helper of this.helpers) helper.kill('SIGKILL');
    this.etcd?.child.kill('SIGKILL');
    this.dhcpServer?.child.kill('SIGKILL');
    destroyNamespaces(this.prefix);
    // Every process went at once, dead-man switches included (like a power loss): sweep the
    // udhcpc hook folders their agents could not remove, as a restarted agent would.
    sweepStaleHookDirectories();
    if (!process.env['VIPD_LAB_KEEP_LOGS']) rmSync(this.dir, { recursive: true, force: true });
  }
}
