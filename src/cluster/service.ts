import { DEFAULT_CONFIG_PATH } from '../config/config-path';
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { installRoot } from '../install-root';

export const UNIT_NAME = 'vipd.service';
/** Where packages put the unit (packaging/systemd/vipd.service), newest layout first. */
const PACKAGED_UNITS = ['/usr/lib/systemd/system/vipd.service', '/lib/systemd/system/vipd.service'];
const LOCAL_UNIT = '/etc/systemd/system/vipd.service';
const DROP_IN = '/etc/systemd/system/vipd.service.d/vipd-init.conf';


const exitedPids = new Set<number>();

export type StartedAgent =
  | { how: 'systemd'; unit: string; unitFile: string }
  | { how: 'background'; pid: number; logPath: string; pidPath: string };

/** systemd is running as PID 1 (the test sd_booted() makes, plus PID 1's name). */
export function systemdIsRunning(): boolean {
  try {
    return existsSync('/run/systemd/system') && readFileSync('/proc/1/comm', 'utf8').trim() === 'systemd';
  } catch {
    return false;
  }
}

/** The `vipd` command line that runs the agent, as this very installation would run it. */
export function agentCommand(configPath: string): string[] {
  const cli = join(installRoot(), 'dist', 'vipd.js');
  return [process.execPath, cli, 'run', '--config', resolve(configPath)];
}

/**
 * Our own unit, for installs without the package's (same hardening in spirit as
 * packaging/systemd/vipd.service; kept short because that one is the reference).
 */
export function renderUnit(configPath: string, dataDir: string): string {
  return `[Unit]
Description=vipd: the cluster's management VIP, elected through etcd
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
Type=exec
ExecStart=${agentCommand(configPath).join(' ')}
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=1
KillSignal=SIGTERM
# The agent stops udhcpc, the dead-man shell and the embedded etcd itself.
KillMode=process
TimeoutStopSec=20
OOMScoreAdjust=-500
UMask=0077
ReadWritePaths=${dataDir}
# DHCP mode's udhcpc hook script lives here; systemd removes it when the unit stops.
RuntimeDirectory=vipd
RuntimeDirectoryMode=0700
NoNewPrivileges=yes

[Install]
WantedBy=multi-user.target
`;
}

/** The packaged unit runs `/usr/bin/vipd run --config /etc/vipd/config.yaml`; other paths need a drop-in. */
export function renderDropIn(configPath: string, dataDir: string): string | null {
  if (resolve(configPath) === DEFAULT_CONFIG_PATH && resolve(dataDir).startsWith('/var/lib/vipd')) return null;
  return `[Service]
ExecStart=
ExecStart=${agentCommand(configPath).join(' ')}
ReadWritePaths=${resolve(dataDir)}
`;
}

function systemctl(...args: string[]): void {
  execFileSync('systemctl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
}

/**
 * Starts the agent: as an enabled systemd unit where systemd runs, else in the background,
 * detached, logging to a file under the data dir (the lab, containers).
 */
export function startAgent(configPath: string, dataDir: string): StartedAgent {
  if (systemdIsRunning()) {
    const packaged = PACKAGED_UNITS.find((path) => existsSync(path));
    let unitFile: string;
    if (packaged) {
      unitFile = packaged;
      const dropIn = renderDropIn(configPath, dataDir);
      if (dropIn) {
        mkdirSync(dirname(DROP_IN), { recursive: true });
        writeFileSync(DROP_IN, dropIn, { mode: 0o644 });
      }
    } else {
      unitFile = LOCAL_UNIT;
      writeFileSync(LOCAL_UNIT, renderUnit(configPath, resolve(dataDir)), { mode: 0o644 });
    }
    systemctl('daemon-reload');
    systemctl('enable', '--now', UNIT_NAME);
    return { how: 'systemd', unit: UNIT_NAME, unitFile };
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const logPath = join(dataDir, 'vipd.log');
  const pidPath = join(dataDir, 'vipd.pid');
  const log = openSync(logPath, 'a', 0o600);
  const [command, ...args] = agentCommand(configPath);
  const child = spawn(command!, args, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start the agent (${command})`);
  const pid = child.pid;
  child.once('exit', () => exitedPids.add(pid));
  writeFileSync(pidPath, `${child.pid}\n`);
  return { how: 'background', pid: child.pid, logPath, pidPath };
}

export function describeStartedAgent(started: StartedAgent): string {
  return started.how === 'systemd'
    ? `enabled and started ${started.unit} (${started.unitFile}); logs: journalctl -u vipd`
    : `started in the background (pid ${started.pid}), logging to ${started.logPath}`;
}

/** Whether a background agent is still running (always true under systemd, which restarts it). */
export function agentAlive(started: StartedAgent): boolean {
  if (started.how === 'systemd') return true;
  if (exitedPids.has(started.pid)) return false;
  try {
    process.kill(started.pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function logTail(started: StartedAgent, lines = 8): string {
  if (started.how === 'systemd') return '';
  try {
    return readFileSync(started.logPath, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
