import type { Command } from 'commander';
import { CONFIG_OPTION_HELP, DEFAULT_CONFIG_PATH, findConfigPath, type ConfigLookup } from '../config/config-path';
import { InputError } from '../config/schema-check';
import { formatStatusLine } from '../status/change-text';
import { formatManagementAddressTable, type ManagementAddress } from '../status/management-address';
import { readManagementAddress } from '../status/read';
import { addApiClientOptions, ApiClient, type ApiClientFlags } from './api-client';
import { ApiChangeFeed, EtcdChangeFeed, followUntilInterrupted, type ChangeFeed } from './change-feed';
import { withCluster } from './cluster';
import { renderOutput } from '../output/output';

/**
 * Commands that work either from a node (the config: --config, $VIPD_CONFIG or
 * /etc/vipd/config.yaml, straight from etcd) or remotely (`--server`, through the API).
 * Returns the config path, or null for the API.
 */
export function chooseSource(options: { config?: string; server?: string }, lookup?: ConfigLookup): string | null {
  if (options.config && options.server) {
    throw new InputError('--config', 'give either --config FILE (on a node) or --server https://VIP-or-FQDN (through the API), not both');
  }
  if (options.server) return null;
  const path = findConfigPath(options.config, lookup);
  if (path) return path;
  throw new InputError(
    '--config',
    `no config file: give --config FILE, set VIPD_CONFIG, or create ${DEFAULT_CONFIG_PATH} (on a node); or --server https://VIP-or-FQDN (through the API)`,
  );
}

/** `vipd status`: the management address as Harvester users query it. */
export function registerStatus(program: Command): void {
  const command = program
    .command('status')
    .description('show the management address: holder, MAC, requested IP, term')
    .option('-c, --config <file>', `${CONFIG_OPTION_HELP}; reads etcd directly`)
    .option('-o, --output <format>', 'json, yaml or jsonpath=TEMPLATE (kubectl syntax)')
    .option('-w, --watch', 'print one line per change (holder, node health, DHCP lease) until Ctrl-C; with -o json, one object per line');
  addApiClientOptions(command, false).action(async (options: Partial<ApiClientFlags> & { config?: string; output?: string; watch?: boolean }) => {
    if (options.watch && options.output !== undefined && options.output !== 'json') {
      throw new InputError('--output', `"${options.output}" cannot be watched; use -o json (one object per line) or no -o`);
    }
    const configPath = chooseSource(options);
    if (options.watch) {
      if (configPath === null) await watchStatus(new ApiChangeFeed(ApiClient.fromFlags(options as ApiClientFlags)), options.output === 'json');
      else await withCluster(configPath, async (cluster) => await watchStatus(new EtcdChangeFeed(cluster), options.output === 'json'));
      return;
    }
    const print = (view: ManagementAddress): void => {
      process.stdout.write(renderOutput(options.output, view, () => formatManagementAddressTable(view)));
    };
    if (configPath === null) {
      print(await ApiClient.fromFlags(options as ApiClientFlags).get<ManagementAddress>('/v1/management-address'));
      return;
    }
    await withCluster(configPath, async ({ config, store, keys }) => print(await readManagementAddress(store, keys, config)));
  });
}

/** `vipd status -w`: a line now, then one per change; rereads are chained so lines keep their order. */
async function watchStatus(feed: ChangeFeed, json: boolean): Promise<void> {
  let last = '';
  const print = async (): Promise<void> => {
    const { view, nodes } = await feed.snapshot();
    const key = json ? JSON.stringify(view) : formatStatusLine(view, nodes, '');
    if (key === last) return;
    last = key;
    process.stdout.write(`${json ? key : formatStatusLine(view, nodes, new Date().toISOString())}\n`);
  };
  // The first read fails the command if the cluster cannot be read at all.
  await print();
  let chain = Promise.resolve();
  const reread = (): void => {
    chain = chain.then(print).catch((error: Error) => {
      // Through the VIP, a move can cut a read short: the reconnection rereads.
      process.stderr.write(`vipd: could not read the status: ${error.message}\n`);
    });
  };
  await followUntilInterrupted(feed, reread, reread);
  await chain;
}
