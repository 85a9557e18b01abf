import type { Command } from 'commander';
import { InputError } from '../config/schema-check';
import { formatManagementAddressTable, type ManagementAddress } from '../status/management-address';
import { readManagementAddress } from '../status/read';
import { addApiClientOptions, ApiClient, type ApiClientFlags } from './api-client';
import { withCluster } from './cluster';
import { renderOutput } from '../output/output';

/** Commands that work either from a node (`--config`, straight from etcd) or remotely (`--server`, through the API). */
export function requireOneSource(options: { config?: string; server?: string }): void {
  if (!options.config === !options.server) {
    throw new InputError('--config', 'give either --config FILE (on a node) or --server https://VIP-or-FQDN (through the API)');
  }
}

/** `vipd status`: the management address as Harvester users query it. */
export function registerStatus(program: Command): void {
  const command = program
    .command('status')
    .description('show the management address: holder, MAC, requested IP, term')
    .option('-c, --config <file>', 'the YAML config file (reads etcd directly)')
    .option('-o, --output <format>', 'json, yaml or jsonpath=TEMPLATE (kubectl syntax)');
  addApiClientOptions(command, false).action(async (options: Partial<ApiClientFlags> & { config?: string; output?: string }) => {
    requireOneSource(options);
    const print = (view: ManagementAddress): void => {
      process.stdout.write(renderOutput(options.output, view, () => formatManagementAddressTable(view)));
    };
    if (options.server) {
      print(await ApiClient.fromFlags(options as ApiClientFlags).get<ManagementAddress>('/v1/management-address'));
      return;
    }
    await withCluster(options.config!, async ({ config, store, keys }) => print(await readManagementAddress(store, keys, config)));
  });
}
