import type { Command } from 'commander';
import { CONFIG_OPTION_HELP, DEFAULT_CONFIG_PATH, findConfigPath, type ConfigLookup } from '../config/config-path';
import { InputError } from '../config/schema-check';
import { formatManagementAddressTable, type ManagementAddress } from '../status/management-address';
import { readManagementAddress } from '../status/read';
import { addApiClientOptions, ApiClient, type ApiClientFlags } from './api-client';
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
    .option('-o, --output <format>', 'json, yaml or jsonpath=TEMPLATE (kubectl syntax)');
  addApiClientOptions(command, false).action(async (options: Partial<ApiClientFlags> & { config?: string; output?: string }) => {
    const configPath = chooseSource(options);
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
