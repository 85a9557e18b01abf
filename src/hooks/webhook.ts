/** A webhook hook: one JSON POST, trusting only the configured CA when there is one. */
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { monotonicMs } from '../clock';
import { OutputBuffer, type AttemptResult } from './attempt';

/**
 * POSTs `body` as JSON. With `ca`, only that CA is trusted; redirects are not followed. A
 * 2xx answer is success.
 */
export function postWebhook(
  url: string,
  headers: Record<string, string>,
  ca: string | null,
  body: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<AttemptResult> {
  const started = monotonicMs();
  const target = new URL(url);
  const response = new OutputBuffer();
  return new Promise((resolve) => {
    let settled = false;
    let request: ClientRequest;
    const finish = (value: Omit<AttemptResult, 'durationMs' | 'stdout' | 'stderr' | 'truncated' | 'exitCode' | 'signal'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve({ ...value, exitCode: null, signal: null, stdout: response.text(), stderr: '', truncated: response.truncated, durationMs: monotonicMs() - started });
    };
    const timer = setTimeout(() => {
      finish({ ok: false, failure: 'timeout', detail: `no answer within ${timeoutMs}ms`, httpStatus: null });
      request.destroy();
    }, timeoutMs);
    const onAbort = (): void => {
      finish({ ok: false, failure: 'error', detail: 'stopped: the agent is shutting down', httpStatus: null });
      request.destroy();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const options = {
      method: 'POST',
      headers: {
        'user-agent': 'vipd-hook',
        ...headers,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      },
      ...(ca !== null ? { ca } : {}),
    };
    const onResponse = (answer: IncomingMessage): void => {
      answer.on('data', (chunk: Buffer) => response.add(chunk));
      answer.on('error', () => undefined);
      answer.on('end', () => {
        const status = answer.statusCode ?? 0;
        const ok = status >= 200 && status < 300;
        finish({ ok, failure: ok ? null : 'http', detail: `HTTP ${status}`, httpStatus: status });
      });
    };
    request = target.protocol === 'https:' ? httpsRequest(target, options, onResponse) : httpRequest(target, options, onResponse);
    request.on('error', (error) => finish({ ok: false, failure: 'error', detail: error.message, httpStatus: null }));
    request.end(body);
  });
}
