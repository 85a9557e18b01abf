import type { Command } from 'commander';
import { loadConfig } from '../../config/config';
import { InputError } from '../../config/schema-check';
import { EtcdStore } from '../../election/etcd-store';
import { ClusterKeys } from '../../election/keys';
import { checkMoveTarget, MoveRefusedError, requestMove } from '../../election/moves';
import { EXIT_UNAVAILABLE } from './exit-codes';

/** `vipd move --to NODE`: a planned move; the chosen node takes the VIP at once. */
export function registerMove(program: Command): void {
  program
    .command('move')
    .description('move the VIP to another node on purpose')
    .requiredOption('--to <node>', 'the node that should hold the VIP')
    .requiredOption('-c, --config <file>', 'the YAML config file')
    .option('--timeout <ms>', 'how long to wait for the target to take the VIP', '10000')
    .action(async (options: { to: string; config: string; timeout: string }) => {
      checkMoveTarget(options.to);
      const timeoutMs = Number(options.timeout);
      if (!Number.isInteger(timeoutMs) || timeoutMs < 100) throw new InputError('--timeout', 'must be a whole number of milliseconds, at least 100');
      const config = loadConfig(options.config);
      const store = new EtcdStore({ endpoints: config.etcd.endpoints, tls: config.etcd.tls, callTimeoutMs: 3000 });
      const started = Date.now();
      try {
        const result = await requestMove(store, new ClusterKeys(config.cluster), options.to, { timeoutMs });
        if (result.from?.term === result.to.term) {
          process.stdout.write(`${options.to} already holds the VIP (term ${result.to.term})\n`);
        } else {
          process.stdout.write(`moved the VIP from ${result.from?.node} to ${result.to.node} (term ${result.to.term}) in ${Date.now() - started} ms\n`);
        }
      } catch (error) {
        if (error instanceof MoveRefusedError) throw new InputError('--to', error.message);
        process.stderr.write(`vipd: cannot reach etcd at ${config.etcd.endpoints.join(', ')}: ${(error as Error).message}\n`);
        process.exitCode = EXIT_UNAVAILABLE;
      } finally {
        store.close();
      }
    });
}
