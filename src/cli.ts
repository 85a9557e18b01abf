#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import pino from 'pino';
import { Agent, EXIT_BAD_INPUT, EXIT_OK } from './agent/agent';
import { loadConfig } from './config/config';
import { InputError } from './config/schema-check';
import { parseLeader } from './election/election';
import { EtcdStore } from './election/etcd-store';
import { ClusterKeys } from './election/keys';
import { describeManagementAddress, formatManagementAddressTable } from './visibility/management-address';
import { renderOutput } from './visibility/output';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../package.json') as { version: string };

const EXIT_UNAVAILABLE = 1;

async function runAgent(options: { config: string }): Promise<void> {
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
}

async function showStatus(options: { config: string; output?: string }): Promise<void> {
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
}

export function buildProgram(): Command {
  const program = new Command('vipd')
    .description('One floating management VIP for a bare-metal cluster, elected through etcd.')
    .version(version)
    .exitOverride()
    .showHelpAfterError();

  program
    .command('run')
    .description('run the node agent')
    .requiredOption('-c, --config <file>', 'the YAML config file')
    .action(runAgent);

  program
    .command('status')
    .description('show the management address: holder, MAC, requested IP, term')
    .requiredOption('-c, --config <file>', 'the YAML config file')
    .option('-o, --output <format>', 'json, yaml or jsonpath=TEMPLATE (kubectl syntax)')
    .action(showStatus);

  return program;
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? 0 : EXIT_BAD_INPUT;
      return;
    }
    if (error instanceof InputError) {
      process.stderr.write(`vipd: ${error.message}\n`);
      process.exitCode = EXIT_BAD_INPUT;
      // The agent may have opened sockets; nothing has been changed, so leave now.
      process.exit(EXIT_BAD_INPUT);
    }
    process.stderr.write(`vipd: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(EXIT_UNAVAILABLE);
  }
}

if (require.main === module) void main(process.argv);
