#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { InputError } from './config/schema-check';
import { EXIT_BAD_INPUT, EXIT_UNAVAILABLE } from './output/exit-codes';
import { registerCa } from './cli/ca';
import { registerCompletion } from './cli/completion';
import { registerDhcp } from './cli/dhcp';
import { registerDoctor } from './doctor/command';
import { registerEvents } from './cli/events';
import { registerInit } from './cli/init';
import { registerJoin } from './cli/join';
import { registerNode } from './cli/node';
import { registerMove } from './cli/move';
import { registerRun } from './cli/run';
import { registerStatus } from './cli/status';
import { registerToken } from './cli/token';
import { Daemon } from './daemon';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../package.json') as { version: string };

/** Every subcommand registers itself from its own module under src/cli/; `run` is handed the composition root. */
const commands: Array<(program: Command) => void> = [
  (program) => registerRun(program, (config, logger) => new Daemon(config, logger)),
  registerStatus, registerEvents, registerMove, registerDhcp, registerToken, registerCa, registerDoctor, registerInit, registerJoin, registerNode, registerCompletion];

export function buildProgram(): Command {
  const program = new Command('vipd')
    .description('One floating management VIP for a bare-metal cluster, elected through etcd.')
    .version(version)
    .exitOverride()
    .showHelpAfterError();
  for (const register of commands) register(program);
  return program;
}

/** Writes to stderr and exits once the write has gone out: to a pipe, writes are asynchronous. */
function fail(message: string, code: number): void {
  process.exitCode = code;
  process.stderr.write(message, () => process.exit(code));
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? 0 : EXIT_BAD_INPUT;
      return;
    }
    // The agent may have opened sockets that would keep the process alive: exit explicitly.
    if (error instanceof InputError) fail(`vipd: ${error.message}\n`, EXIT_BAD_INPUT);
    else fail(`vipd: ${(error as Error).stack ?? String(error)}\n`, EXIT_UNAVAILABLE);
  }
}

if (require.main === module) void main(process.argv);
