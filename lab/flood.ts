/**
 * Floods one vipd API from inside a lab namespace, in bounded phases, and prints what it saw
 * as one JSON line: many event streams with one read token, idle TCP connections that never
 * start TLS, then bad tokens as fast as it can. Run by test/lab/floods.test.ts; traffic goes
 * only to the address given, a lab address.
 *
 *   node flood.js '{"target":"192.0.2.10","ca":"/path/ca.pem","readToken":"vipd_…","streams":100,"idle":100,"badMs":3000}'
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { connect, type Socket } from 'node:net';

interface FloodPlan {
  target: string;
  ca: string;
  readToken: string;
  streams: number;
  idle: number;
  badMs: number;
  /** How long idle connections may stay open before the flood gives up on them. */
  idleDeadlineMs?: number;
}

export interface FloodReport {
  streams: { ok: number; refused: number; failed: number };
  idle: { opened: number; closedAtAccept: number; closedLater: number; stillOpen: number; maxHeldMs: number };
  bad: { sent: number; unauthorized: number; throttled: number; other: number; retryAfter: string | null };
}

const plan = JSON.parse(process.argv[2] ?? '{}') as FloodPlan;
const ca = readFileSync(plan.ca, 'utf8');

function get(path: string, headers: Record<string, string>, agent: Agent | false, keepOpen = false): Promise<{ status: number; retryAfter: string | null; close: () => void }> {
  return new Promise((resolve) => {
    const req = request({ host: plan.target, port: 443, path, headers, ca, servername: plan.target, agent, timeout: 10_000 }, (response) => {
      const retryAfter = (response.headers['retry-after'] as string | undefined) ?? null;
      if (!keepOpen || response.statusCode !== 200) response.resume();
      resolve({ status: response.statusCode ?? 0, retryAfter, close: () => req.destroy() });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, retryAfter: null, close: () => undefined }));
    req.end();
  });
}

async function streams(): Promise<FloodReport['streams']> {
  const answers = await Promise.all(
    Array.from({ length: plan.streams }, () => get('/v1/events', { authorization: `Bearer ${plan.readToken}`, accept: 'text/event-stream' }, false, true)),
  );
  for (const answer of answers) answer.close();
  return {
    ok: answers.filter((answer) => answer.status === 200).length,
    refused: answers.filter((answer) => answer.status === 503).length,
    failed: answers.filter((answer) => answer.status === 0).length,
  };
}

async function idle(): Promise<FloodReport['idle']> {
  const deadline = plan.idleDeadlineMs ?? 30_000;
  const outcomes = await Promise.all(
    Array.from(
      { length: plan.idle },
      () =>
        new Promise<{ opened: boolean; heldMs: number | null }>((resolve) => {
          let opened = false;
          let openedAt = 0;
          const socket: Socket = connect({ host: plan.target, port: 443 }, () => {
            opened = true;
            openedAt = Date.now();
          });
          const timer = setTimeout(() => {
            socket.destroy();
            resolve({ opened, heldMs: null });
          }, deadline);
          socket.on('error', () => undefined);
          socket.once('close', () => {
            clearTimeout(timer);
            resolve({ opened, heldMs: opened ? Date.now() - openedAt : 0 });
          });
        }),
    ),
  );
  const held = outcomes.filter((outcome) => outcome.heldMs !== null).map((outcome) => outcome.heldMs!);
  return {
    opened: outcomes.filter((outcome) => outcome.opened).length,
    closedAtAccept: held.filter((ms) => ms < 1000).length,
    closedLater: held.filter((ms) => ms >= 1000).length,
    stillOpen: outcomes.filter((outcome) => outcome.heldMs === null).length,
    maxHeldMs: Math.max(0, ...held),
  };
}

async function badTokens(): Promise<FloodReport['bad']> {
  const report: FloodReport['bad'] = { sent: 0, unauthorized: 0, throttled: 0, other: 0, retryAfter: null };
  const until = Date.now() + plan.badMs;
  const worker = async (): Promise<void> => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    while (Date.now() < until) {
      const token = `vipd_${randomBytes(8).toString('hex')}.${randomBytes(32).toString('base64url')}`;
      const answer = await get('/v1/nodes', { authorization: `Bearer ${token}` }, agent);
      report.sent++;
      if (answer.status === 401) report.unauthorized++;
      else if (answer.status === 429) {
        report.throttled++;
        report.retryAfter ??= answer.retryAfter;
      } else report.other++;
    }
    agent.destroy();
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return report;
}

async function main(): Promise<void> {
  // Streams first: once the bad tokens have throttled this address, its good token gets 429 too.
  const streamReport = await streams();
  const idleReport = await idle();
  const badReport = await badTokens();
  const report: FloodReport = { streams: streamReport, idle: idleReport, bad: badReport };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

void main();
