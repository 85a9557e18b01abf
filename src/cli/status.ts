import type { Command } from 'commander';
import { X509Certificate } from 'node:crypto';
import { securityKeys } from '../store/keys';
import type { PublishedDhcpState } from '../store/records';
import { readHookFailure } from '../store/hook-history';
import type { Config } from '../config/config';
import { InputError } from '../config/schema-check';
import { parseLeader } from '../store/records';
import type { EtcdStore } from '../store/etcd-store';
import type { ClusterKeys } from '../store/keys';
import type { ClusterSettings } from '../store/records';
import { describeManagementAddress, formatManagementAddressTable, type ManagementAddress } from '../status/management-address';
import { renderOutput } from './output';
import { addApiClientOptions, ApiClient, type ApiClientFlags } from './api-client';
import { parseStored, withCluster } from './cluster';

/** Reads everything the management address shows from etcd: holder, settings, DHCP lease. */
export async function readManagementAddress(store: EtcdStore, keys: ClusterKeys, config: Config): Promise<ManagementAddress> {
  const [leader, settings, dhcp, ca, hookFailure] = await Promise.all([
    store.get(keys.leader),
    store.get(keys.settings),
    store.get(keys.dhcp),
    store.get(securityKeys(keys).ca),
    readHookFailure(store, keys),
  ]);
  const security = securityKeys(keys);
  const caCertificate = parseStored<{ certificate: string }>(security.ca, ca?.value)?.certificate;
  const view = describeManagementAddress({
    cluster: config.cluster,
    address: config.vip.address,
    mode: config.vip.mode,
    interface: config.node.interface,
    leader: parseLeader(leader),
    hwaddr: parseStored<ClusterSettings>(keys.settings, settings?.value)?.hwaddr ?? (config.vip.mode === 'dhcp' ? config.vip.hwaddr : null),
    dhcp: config.vip.mode === 'dhcp' ? parseStored<PublishedDhcpState>(keys.dhcp, dhcp?.value) : null,
    hookFailure,
  });
  if (caCertificate) view.status.caFingerprint = new X509Certificate(caCertificate).fingerprint256;
  return view;
}

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
