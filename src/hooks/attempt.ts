/** What one attempt of a hook (a command or a webhook) reports, and how much of its output is kept. */
import type { AttemptFailure, HookAttemptRecord } from '../store/records';

/** Each of stdout and stderr (or a webhook's response body) is kept up to this many bytes. */
export const OUTPUT_LIMIT_BYTES = 4096;

export interface AttemptResult extends HookAttemptRecord {
  ok: boolean;
  failure: AttemptFailure | null;
}

/** Collects a stream's first OUTPUT_LIMIT_BYTES bytes and notes whether there was more. */
export class OutputBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  add(chunk: Buffer): void {
    const room = OUTPUT_LIMIT_BYTES - this.size;
    if (chunk.length > room) this.truncated = true;
    if (room <= 0) return;
    const kept = chunk.subarray(0, room);
    this.chunks.push(kept);
    this.size += kept.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

export function attemptResult(partial: Partial<AttemptResult> & Pick<AttemptResult, 'ok' | 'detail' | 'durationMs'>): AttemptResult {
  return { failure: null, exitCode: null, signal: null, httpStatus: null, stdout: '', stderr: '', truncated: false, ...partial };
}
