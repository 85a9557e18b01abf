import { chmodSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PREFIX = 'vipd-dhcp-';

let installed: string | null = null;

/** systemd's RuntimeDirectory= when run as a unit (removed by systemd at stop), else the temp dir. */
function parentDirectory(env: NodeJS.ProcessEnv = process.env): string {
  return env.RUNTIME_DIRECTORY?.split(':')[0] || tmpdir();
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the hook directories of agents that died without cleaning up (SIGKILL past the dead-man switch). */
export function sweepStaleHookDirectories(parent = parentDirectory()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return removed;
  }
  for (const name of names) {
    const pid = Number(name.slice(PREFIX.length));
    if (!name.startsWith(PREFIX) || !Number.isInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) continue;
    rmSync(join(parent, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** The directory of this process's hook script: one per agent process, named by its pid. */
export function hookDirectory(parent = parentDirectory()): string {
  return join(parent, `${PREFIX}${process.pid}`);
}

/**
 * Writes the udhcpc hook script once per process and returns its path. The directory goes
 * when the process exits; a killed agent's dead-man switch removes it, and the next agent
 * sweeps any that both missed.
 */
export function installUdhcpcHook(script: string): string {
  if (installed) return installed;
  sweepStaleHookDirectories();
  const directory = hookDirectory();
  rmSync(directory, { recursive: true, force: true });
  mkdirSync(directory, { mode: 0o700 });
  const path = join(directory, 'udhcpc-hook.sh');
  writeFileSync(path, script, { mode: 0o700 });
  chmodSync(path, 0o700);
  installed = path;
  process.once('exit', removeUdhcpcHook);
  return path;
}

export function removeUdhcpcHook(): void {
  if (!installed) return;
  rmSync(hookDirectory(), { recursive: true, force: true });
  installed = null;
}
