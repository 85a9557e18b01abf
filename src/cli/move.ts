import type { Command } from 'commander';
import { CONFIG_OPTION_HELP } from '../config/config-path';
import { InputError } from '../config/schema-check';
import { checkMoveTarget, MoveRefusedError, requestMove } from '../election/move-request';
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
      await moveThroughApi(ApiClient.fromFlags(options as ApiClientFlags), options.to, timeoutMs);
      process.stdout.write(`moved the VIP to ${options.to} in ${Date.now() - started} ms\n`);
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

/**
 * The node answering through the VIP is the one giving it up, so the reply can be cut off
 * mid-move; then ask again (the new holder answers) until the target holds it.
 */
async function moveThroughApi(client: ApiClient, to: string, timeoutMs: number): Promise<void> {
  try {
    // The answer comes within milliseconds unless the node answering gave the VIP away, in
    // which case it can never arrive (that node no longer owns the address): don't wait long.
    await client.post('/v1/management-address/move', { to }, 3000);
    return;
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) throw new InputError('--to', error.message);
    if (error instanceof ApiError || error instanceof InputError) throw error;
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const view = await client.get<ManagementAddress>('/v1/management-address').catch(() => null);
    if (view?.status.holder === to) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${to} did not take the VIP within ${timeoutMs}ms`);
}
