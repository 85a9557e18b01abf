import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Undoes what the agent did to the node if the agent dies without cleaning up (SIGKILL,
 * OOM, a crash). A tiny shell waits on a pipe from the agent; the kernel closes the pipe
 * when the agent dies, whatever killed it, and the shell runs the cleanup commands at once.
 * That is much sooner than the address's kernel lifetime, which has whole-second
 * granularity. It cannot help a node whose every process is frozen (SIGSTOP): for that
 * the new holder probes the segment before taking the VIP.
 */
export class DeadManSwitch {
  private child: ChildProcess | null = null;

  /** Arms the switch with commands (argv lists) to run if the agent dies; replaces any armed before. */
  arm(commands: string[][]): void {
    this.disarm();
    const quoted = commands.map((argv) => argv.map((word) => `'${word.replace(/'/g, `'\\''`)}'`).join(' '));
    // `read` returns when the agent's end of the pipe closes, which only its death does.
    const script = `read _; ${quoted.map((command) => `${command} 2>/dev/null`).join('; ')}`;
    const child = spawn('sh', ['-c', script], { stdio: ['pipe', 'ignore', 'ignore'] });
    child.on('error', () => undefined);
    child.stdin?.on('error', () => undefined);
    this.child = child;
  }

  /** The agent cleaned up itself: stop the switch without running the commands. */
  disarm(): void {
    this.child?.kill('SIGKILL');
    this.child = null;
  }

  get armed(): boolean {
    return this.child !== null;
  }
}
