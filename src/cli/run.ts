import type { Command } from 'commander';
import pino from 'pino';
import { Agent } from '../agent/agent';
import { EmbeddedEtcd } from '../cluster/embedded-etcd';
import { JoinService } from '../cluster/join-service';
import { EXIT_OK } from './exit-codes';
import { loadConfig } from '../config/config';

/** `vipd run`: the node agent, until SIGTERM or SIGINT. */
export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run the node agent')
    .requiredOption('-c, --config <file>', 'the YAML config file')
    .action(async (options: { config: string }) => {
      const config = loadConfig(options.config);
      const logger = pino({ level: config.logLevel, base: { node: config.node.name, cluster: config.cluster } });
      const join = new JoinService(config, logger);
      const agent = new Agent(config, logger, join);
      let etcd: EmbeddedEtcd | null = null;
      let stopping = false;
      const shutdown = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'shutting down');
        // The agent first: it drops the VIP and revokes its lease while etcd still answers.
        void agent
          .stop()
          .then(async () => {
            join.close();
            await etcd?.stop();
          })
          .then(() => process.exit(EXIT_OK));
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
      // The embedded store (vipd init/join) runs as this process's child, and is up before the agent connects.
      if (config.etcd.embedded) etcd = await EmbeddedEtcd.start(config, logger);
      if (stopping) return;
      await agent.start();
    });
}
