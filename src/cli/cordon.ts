import type { Command } from 'commander';
import { hostname } from 'node:os';
import { CONFIG_OPTION_HELP } from '../config/config-path';
import { InputError } from '../config/schema-check';
import { cordonNode, describeCordon, readCordon, UnknownNodeError, uncordonNode } from '../store/maintenance';
import { addApiClientOptions, ApiClient, ApiError, type ApiClientFlags } from './api-client';
import { withCluster, type ClusterContext } from './cluster';
import { chooseSource } from './status';

interface NodePreferenceAnswer {
  node: string;
  changed: boolean;
  cordon: { strict: boolean; by: string; reason: string | null } | null;
}

type Flags = Partial<ApiClientFlags> & { config?: string; strict?: boolean; reason?: string };

/** Runs against etcd on a node, or through the API; an unknown node is bad input (exit 2). */
async function onCluster(node: string, options: Flags, direct: (context: ClusterContext) => Promise<string>, api: (client: ApiClient) => Promise<string>): Promise<void> {
  if (!/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/.test(node)) throw new InputError('NODE', `"${node.slice(0, 70)}" is not a node name`);
  const configPath = chooseSource(options);
  try {
    if (configPath === null) process.stdout.write(`${await api(ApiClient.fromFlags(options as ApiClientFlags))}\n`);
    else await withCluster(configPath, async (context) => void process.stdout.write(`${await direct(context)}\n`));
  } catch (error) {
    if (error instanceof UnknownNodeError || (error instanceof ApiError && error.status === 404)) throw new InputError('NODE', error.message);
    throw error;
  }
}

/** `vipd cordon NODE`: keeps the VIP off a node (maintenance); a holder hands it on by a planned move. */
export function registerCordon(program: Command): void {
  const command = program
    .command('cordon')
    .argument('<node>', 'the node to keep the VIP off')
    .description('keep the VIP off a node (maintenance); if it holds the VIP, it hands it on by a planned move')
    .option('--strict', 'never let it take the VIP, even when no other node can')
    .option('--reason <text>', 'why, for status and the history')
    .option('-c, --config <file>', `${CONFIG_OPTION_HELP}; talks to etcd directly`);
  addApiClientOptions(command, false).action(async (node: string, options: Flags) => {
    const strict = options.strict ?? false;
    const reason = options.reason ?? null;
    if (reason !== null && (reason.length > 200 || /[\u0000-\u001f]/.test(reason))) throw new InputError('--reason', 'must be one line of at most 200 characters');
    const said = (changed: boolean, text: string): string => (changed ? `node ${node} ${text}` : `node ${node} was ${text} already`);
    await onCluster(
      node,
      options,
      async ({ store, keys }) => {
        const changed = await cordonNode(store, keys, node, { strict, by: `vipd cordon on ${hostname()}`, reason });
        const record = await readCordon(store, keys, node);
        return said(changed, record ? describeCordon(record) : 'cordoned');
      },
      async (client) => {
        const answer = await client.post<NodePreferenceAnswer>(`/v1/nodes/${node}/cordon`, { strict, ...(reason !== null ? { reason } : {}) });
        return said(answer.changed, answer.cordon ? describeCordon({ node, ...answer.cordon, time: '' }) : 'cordoned');
      },
    );
  });
}

/** `vipd uncordon NODE`: the node may take the VIP again; it does not take it back unless preemption says so. */
export function registerUncordon(program: Command): void {
  const command = program
    .command('uncordon')
    .argument('<node>', 'the node to let take the VIP again')
    .description('let a cordoned node take the VIP again')
    .option('-c, --config <file>', `${CONFIG_OPTION_HELP}; talks to etcd directly`);
  addApiClientOptions(command, false).action(async (node: string, options: Flags) => {
    const said = (changed: boolean): string => (changed ? `node ${node} uncordoned` : `node ${node} was not cordoned`);
    await onCluster(
      node,
      options,
      async ({ store, keys }) => said(await uncordonNode(store, keys, node, `vipd uncordon on ${hostname()}`)),
      async (client) => said((await client.delete<NodePreferenceAnswer>(`/v1/nodes/${node}/cordon`)).changed),
    );
  });
}
