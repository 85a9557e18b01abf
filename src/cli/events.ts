import type { Command } from 'commander';
import { CONFIG_OPTION_HELP } from '../config/config-path';
import { InputError } from '../config/schema-check';
import type { ClusterChange } from '../status/changes';
import { changeAsJson, formatChangeLine } from '../status/change-text';
import { addApiClientOptions, ApiClient, type ApiClientFlags } from './api-client';
import { ApiChangeFeed, EtcdChangeFeed, followUntilInterrupted, type ChangeFeed } from './change-feed';
import { withCluster } from './cluster';
import { chooseSource } from './status';

interface EventsFlags extends Partial<ApiClientFlags> {
  config?: string;
  output?: string;
  watch?: boolean;
  limit?: string;
}

/** `vipd events [-w] [-o json]`: the history of moves and health verdicts, then, with -w, every change as it happens. */
export function registerEvents(program: Command): void {
  const command = program
    .command('events')
    .description('show the history of VIP moves and health verdicts; with -w, follow moves, node health and DHCP lease changes')
    .option('-c, --config <file>', `${CONFIG_OPTION_HELP}; reads etcd directly`)
    .option('-o, --output <format>', 'json: one JSON object per line')
    .option('-w, --watch', 'after the history, print each change as it happens, until Ctrl-C')
    .option('--limit <n>', 'show at most this many past events (default: all that are kept)');
  addApiClientOptions(command, false).action(async (options: EventsFlags) => {
    if (options.output !== undefined && options.output !== 'json') throw new InputError('--output', `"${options.output}" is not a format events can print; use json`);
    const limit = options.limit === undefined ? Infinity : Number(options.limit);
    if (limit !== Infinity && (!Number.isInteger(limit) || limit < 0)) throw new InputError('--limit', 'must be a whole number, 0 or more');
    const configPath = chooseSource(options);
    const print = (change: ClusterChange): void => {
      process.stdout.write(`${options.output === 'json' ? changeAsJson(change) : formatChangeLine(change)}\n`);
    };
    const show = async (feed: ChangeFeed): Promise<void> => {
      const history = await feed.history();
      for (const change of limit === Infinity ? history : history.slice(history.length - limit)) print(change);
      if (options.watch) await followUntilInterrupted(feed, print, () => undefined);
    };
    if (configPath === null) await show(new ApiChangeFeed(ApiClient.fromFlags(options as ApiClientFlags)));
    else await withCluster(configPath, async (cluster) => await show(new EtcdChangeFeed(cluster)));
  });
}
