import type { Command } from 'commander';
import pino from 'pino';
import { Agent } from '../../agent/agent';
import { EXIT_OK } from './exit-codes';
import { loadConfig } from '../../config/config';

/** `vipd run`: the node agent, until SIGTERM or SIGINT. */
export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run the node agent')
    .requiredOption('-c, --config <file>', 'the YAML config file')
    .action(async (options: { config: string }) => {
      const config = loadConfig(options.config);
      const logger = pino({ level: config.logLevel, base: { node: config.node.name, cluster: config.cluster } });
      const agent = new Agent(config, logger);
      let stopping = false;
      const shutdown = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'shutting down');
        void agent.stop().then(() => process.exit(EXIT_OK));
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
      await agent.start();
    });
}
