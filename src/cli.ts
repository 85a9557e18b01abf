#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { InputError } from './config/schema-check';
import { EXIT_BAD_INPUT, EXIT_UNAVAILABLE } from './visibility/cli/exit-codes';
import { registerDhcp } from './visibility/cli/dhcp';
import { registerMove } from './visibility/cli/move';
import { registerRun } from './visibility/cli/run';
import { registerStatus } from './visibility/cli/status';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../package.json') as { version: string };

/** Every subcommand registers itself from its own module under src/visibility/cli/. */
const commands: Array<(program: Command) => void> = [registerRun, registerStatus, registerMove, registerDhcp];

export function buildProgram(): Command {
  const program = new Command('vipd')
    .description('One floating management VIP for a bare-metal cluster, elected through etcd.')
    .version(version)
    .exitOverride()
    .showHelpAfterError();
  for (const register of commands) register(program);
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
      // The agent may have opened sockets; nothing has been changed, so leave now.
      process.exit(EXIT_BAD_INPUT);
    }
    process.stderr.write(`vipd: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(EXIT_UNAVAILABLE);
  }
}

if (require.main === module) void main(process.argv);
