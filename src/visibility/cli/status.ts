import type { Command } from 'commander';
import { loadConfig } from '../../config/config';
import type { PublishedDhcpState } from '../../agent/agent';
import type { Config } from '../../config/config';
import { parseLeader } from '../../election/election';
import type { ClusterSettings } from '../../election/membership';
import { EtcdStore } from '../../election/etcd-store';
import { ClusterKeys } from '../../election/keys';
import { describeManagementAddress, formatManagementAddressTable, type ManagementAddress } from '../management-address';
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
        let view;
        try {
          view = await readManagementAddress(store, keys, config);
        } catch (error) {
          process.stderr.write(`vipd: cannot reach etcd at ${config.etcd.endpoints.join(', ')}: ${(error as Error).message}\n`);
          process.exitCode = EXIT_UNAVAILABLE;
          return;
        }
        process.stdout.write(renderOutput(options.output, view, () => formatManagementAddressTable(view)));
      } finally {
        store.close();
      }
    });
}

/** Reads everything the management address shows from etcd: holder, settings, DHCP lease. */
export async function readManagementAddress(store: EtcdStore, keys: ClusterKeys, config: Config): Promise<ManagementAddress> {
  const [leader, settings, dhcp] = await Promise.all([store.get(keys.leader), store.get(keys.settings), store.get(keys.dhcp)]);
  const parse = <T>(value: string | undefined): T | null => (value ? (JSON.parse(value) as T) : null);
  return describeManagementAddress({
    cluster: config.cluster,
    address: config.vip.address,
    mode: config.vip.mode,
    interface: config.node.interface,
    leader: parseLeader(leader),
    hwaddr: parse<ClusterSettings>(settings?.value)?.hwaddr ?? (config.vip.mode === 'dhcp' ? config.vip.hwaddr : null),
    dhcp: config.vip.mode === 'dhcp' ? parse<PublishedDhcpState>(dhcp?.value) : null,
  });
}
