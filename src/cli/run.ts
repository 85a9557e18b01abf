import type { Command } from 'commander';
import pino, { type Logger } from 'pino';
import { loadConfig, type Config } from '../config/config';
import { CONFIG_OPTION_HELP, requireConfigPath } from '../config/config-path';
import { EXIT_OK } from '../output/exit-codes';

/** Builds the daemon (src/daemon.ts): handed in by main.ts, the only module that imports it. */
export type CreateDaemon = (config: Config, logger: Logger) => { start(): Promise<void>; stop(): Promise<void>; reload(load: () => Config): Promise<void> };

/** `vipd run`: the node agent, until SIGTERM or SIGINT; SIGHUP re-reads the config (issue 14). */
export function registerRun(program: Command, createDaemon: CreateDaemon): void {
  program
    .command('run')
    .description('run the node agent')
    .option('-c, --config <file>', CONFIG_OPTION_HELP)
    .action(async (options: { config?: string }) => {
      const path = requireConfigPath(options.config);
      const config = loadConfig(path);
      const logger = pino({ level: config.logLevel, base: { node: config.node.name, cluster: config.cluster } });
      const daemon = createDaemon(config, logger);
      let stopping = false;
      const shutdown = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'shutting down');
        void daemon.stop().then(() => process.exit(EXIT_OK));
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
      process.on('SIGHUP', () => {
        logger.info({ path }, 'SIGHUP: re-reading the config');
        void daemon.reload(() => loadConfig(path));
      });
      await daemon.start();
    });
}
