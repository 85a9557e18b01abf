import type { Command } from 'commander';
import { loadConfig } from '../../config/config';
import { parseLeader } from '../../election/election';
import { EtcdStore } from '../../election/etcd-store';
import { ClusterKeys } from '../../election/keys';
import { describeManagementAddress, formatManagementAddressTable } from '../management-address';
import { renderOutput } from '../output';
import { EXIT_UNAVAILABLE } from './exit-codes';

/** `vipd status`: the management address as Harvester users query it. */
export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('show the management address: holder, MAC, requested IP, term')
    .requiredOption('-c, --config <file>', 'the YAML config file')
    .option('-o, --output <format>', 'json, yaml or jsonpath=TEMPLATE (kubectl syntax)')
    .action(async (options: { config: string; output?: string }) => {
      const config = loadConfig(options.config);
      const keys = new ClusterKeys(config.cluster);
      const store = new EtcdStore({ endpoints: config.etcd.endpoints, tls: config.etcd.tls, callTimeoutMs: 3000 });
      try {
        let leader;
        try {
          leader = parseLeader(await store.get(keys.leader));
        } catch (error) {
          process.stderr.write(`vipd: cannot reach etcd at ${config.etcd.endpoints.join(', ')}: ${(error as Error).message}\n`);
          process.exitCode = EXIT_UNAVAILABLE;
          return;
        }
        const view = describeManagementAddress({
          cluster: config.cluster,
          address: config.vip.address,
          mode: config.vip.mode,
          interface: config.node.interface,
          leader,
        });
        process.stdout.write(renderOutput(options.output, view, () => formatManagementAddressTable(view)));
      } finally {
        store.close();
      }
    });
}
