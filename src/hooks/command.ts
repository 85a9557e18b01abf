/** A command hook: run without a shell, in its own process group, with a timeout. */
import { spawn } from 'node:child_process';
import { monotonicMs } from '../clock';
import { attemptResult, OutputBuffer, type AttemptResult } from './attempt';

/**
 * Runs argv without a shell, with `env` added to the agent's environment. At the timeout
 * (or on abort) the whole process group is killed, so a script's children go too.
 */
export function runCommand(argv: string[], env: Record<string, string>, timeoutMs: number, signal?: AbortSignal): Promise<AttemptResult> {
  const started = monotonicMs();
  const stdout = new OutputBuffer();
  const stderr = new OutputBuffer();
  return new Promise((resolve) => {
    let settled = false;
    let timedOut = false;
    let aborted = false;
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: the timeout kills the script and everything it started.
      detached: true,
    });
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      killGroup();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (value: AttemptResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const outputs = (): Pick<AttemptResult, 'stdout' | 'stderr' | 'truncated'> => ({
      stdout: stdout.text(),
      stderr: stderr.text(),
      truncated: stdout.truncated || stderr.truncated,
    });
    child.stdout!.on('data', (chunk: Buffer) => stdout.add(chunk));
    child.stderr!.on('data', (chunk: Buffer) => stderr.add(chunk));
    child.once('error', (error) => {
      finish(attemptResult({ ok: false, failure: 'error', detail: `could not run ${argv[0]}: ${error.message}`, durationMs: monotonicMs() - started, ...outputs() }));
    });
    child.once('exit', (code, exitSignal) => {
      const report = (): void => {
        const durationMs = monotonicMs() - started;
        const base = { exitCode: code, signal: exitSignal, durationMs, ...outputs() };
        if (timedOut) finish(attemptResult({ ...base, ok: false, failure: 'timeout', detail: `timed out after ${timeoutMs}ms and was killed` }));
        else if (aborted) finish(attemptResult({ ...base, ok: false, failure: 'error', detail: 'stopped: the agent is shutting down' }));
        else if (code === 0) finish(attemptResult({ ...base, ok: true, detail: 'exit code 0' }));
        else if (code !== null) finish(attemptResult({ ...base, ok: false, failure: 'exit', detail: `exit code ${code}` }));
        else finish(attemptResult({ ...base, ok: false, failure: 'exit', detail: `killed by ${exitSignal}` }));
      };
      // A background child may keep the pipes open: wait briefly for the rest of the output, not for it.
      const grace = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        report();
      }, 200);
      child.once('close', () => {
        clearTimeout(grace);
        report();
      });
    });
  });
}
