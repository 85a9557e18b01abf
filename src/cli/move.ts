import type { Command } from 'commander';
import { CONFIG_OPTION_HELP } from '../config/config-path';
import { InputError } from '../config/schema-check';
import { checkMoveTarget, MoveRefusedError, requestMove, type MoveAccepted } from '../election/move-request';
import type { ManagementAddress } from '../status/management-address';
import { addApiClientOptions, ApiClient, ApiError, type ApiClientFlags } from './api-client';
import { withCluster } from './cluster';
import { chooseSource } from './status';

/** `vipd move --to NODE`: a planned move; the chosen node takes the VIP at once. */
export function registerMove(program: Command): void {
  const command = program
    .command('move')
    .description('move the VIP to another node on purpose')
    .requiredOption('--to <node>', 'the node that should hold the VIP')
    .option('-c, --config <file>', `${CONFIG_OPTION_HELP}; talks to etcd directly`)
    .option('--timeout <ms>', 'how long to wait for the target to take the VIP', '10000');
  addApiClientOptions(command, false).action(async (options: Partial<ApiClientFlags> & { to: string; config?: string; timeout: string }) => {
    checkMoveTarget(options.to);
    const configPath = chooseSource(options);
    const timeoutMs = Number(options.timeout);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 100) throw new InputError('--timeout', 'must be a whole number of milliseconds, at least 100');
    const started = Date.now();
    if (configPath === null) {
      process.stdout.write(`${await moveThroughApi(ApiClient.fromFlags(options as ApiClientFlags), options.to, timeoutMs)}\n`);
      return;
    }
    await withCluster(configPath, async ({ store, keys }) => {
      try {
        const result = await requestMove(store, keys, options.to, { timeoutMs });
        if (result.from?.term === result.to.term) {
          process.stdout.write(`${options.to} already holds the VIP (term ${result.to.term})\n`);
        } else {
          process.stdout.write(`moved the VIP from ${result.from?.node} to ${result.to.node} (term ${result.to.term}) in ${Date.now() - started} ms\n`);
        }
      } catch (error) {
        if (error instanceof MoveRefusedError) throw new InputError('--to', error.message);
        throw error;
      }
    });
  });
}

/** How often the API is asked during a move followed through it: the outage's resolution. */
const FOLLOW_INTERVAL_MS = 20;
/** A poll waits this long for an answer; a VIP in flight may swallow the request. */
const FOLLOW_REQUEST_TIMEOUT_MS = 300;

interface About {
  node: { name: string; ip: string };
  fqdn: string | null;
}

/**
 * Asks for the move and follows it. The server answers 202 before the holder is asked, so
 * the answer arrives even when it comes through the VIP from the node giving it up. Through
 * the VIP (or the FQDN), the move is done when the target itself answers, and the longest
 * time without any answer is the outage as this client saw it.
 */
async function moveThroughApi(client: ApiClient, to: string, timeoutMs: number): Promise<string> {
  const [about, view] = await Promise.all([client.get<About>('/v1/about'), client.get<ManagementAddress>('/v1/management-address')]);
  const throughVip = client.host === view.status.address || (about.fqdn !== null && client.host === about.fqdn);
  let accepted: MoveAccepted;
  try {
    accepted = await client.post<MoveAccepted>('/v1/management-address/move', { to }, 3000);
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) throw new InputError('--to', error.message);
    throw error;
  }
  if (accepted.state === 'done') return `${to} already holds the VIP (term ${accepted.term})`;

  const deadline = Date.now() + timeoutMs;
  let lastAnswerAt = Date.now();
  let longestSilenceMs = 0;
  for (;;) {
    const asked = Date.now();
    const answer = throughVip
      ? await client.get<About>('/v1/about', FOLLOW_REQUEST_TIMEOUT_MS).then((seen) => seen.node.name).catch(() => null)
      : await client.get<ManagementAddress>('/v1/management-address', FOLLOW_REQUEST_TIMEOUT_MS).then((seen) => seen.status.holder).catch(() => null);
    const now = Date.now();
    if (answer !== null) {
      longestSilenceMs = Math.max(longestSilenceMs, now - lastAnswerAt);
      lastAnswerAt = now;
      if (answer === to) break;
    }
    if (now > deadline) throw new Error(`${to} did not take the VIP within ${timeoutMs}ms (move ${accepted.id})`);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, FOLLOW_INTERVAL_MS - (now - asked))));
  }
  const after = await client.get<ManagementAddress>('/v1/management-address');
  const moved = `moved the VIP from ${accepted.from} to ${to} (term ${after.status.term ?? '?'}, move ${accepted.id})`;
  return throughVip ? `${moved}; ${client.host} went unanswered for at most ${longestSilenceMs} ms (asked every ${FOLLOW_INTERVAL_MS} ms)` : moved;
}
