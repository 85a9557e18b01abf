import type { Command } from 'commander';
import { CONFIG_OPTION_HELP } from '../config/config-path';
import { removeNode } from '../cluster/node-remove';
import { withCluster } from './cluster';

/** `vipd node remove NAME`: take a node out of the cluster for good. */
export function registerNode(program: Command): void {
  const node = program.command('node').description('manage the cluster\'s nodes');
  node
    .command('remove')
    .description('remove a node: its registration, its etcd member (embedded store), its etcd user (where vipd manages etcd access), and the tokens made on it')
    .argument('<name>', 'the node name, as `vipd status` and the dashboard show it')
    .option('--force', 'remove it even though its agent is running')
    .option('--keep-tokens', 'keep the tokens made on that node (by default they go with it)')
    .option('-c, --config <file>', CONFIG_OPTION_HELP)
    .action(async (name: string, options: { force?: boolean; keepTokens?: boolean; config?: string }) => {
      await withCluster(options.config, async ({ store, keys }) => {
        const removed = await removeNode(store, keys, name, { force: options.force ?? false, keepTokens: options.keepTokens ?? false });
        const parts = [removed.record ? 'its registration' : null, removed.etcdMember ? `etcd member ${removed.etcdMember}` : null, removed.revoked ? 'its etcd user (its certificate is refused from now on)' : null, removed.tokens.length > 0 ? `the tokens made on it (${removed.tokens.join(', ')})` : null].filter(Boolean);
        process.stdout.write(`removed node ${name}: ${parts.join(' and ')}\n`);
      });
    });
}
