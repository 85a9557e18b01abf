#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { EXIT_BAD_INPUT, EXIT_UNAVAILABLE } from './output/exit-codes';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../package.json') as { version: string };

type Register = (program: Command) => void;

/* eslint-disable @typescript-eslint/no-require-imports */
/**
 * Every subcommand registers itself from its own module under src/cli/; `run` is handed the
 * composition root. Each module is loaded only when its command is named (or for help and
 * completion): `vipd status` need not load the daemon, nor `vipd run` the doctor or `vipd init`.
 */
const commands: Record<string, () => Register> = {
  run: () => {
    const { registerRun } = require('./cli/run') as typeof import('./cli/run');
    const { Daemon } = require('./daemon') as typeof import('./daemon');
    return (program) => registerRun(program, (config, logger) => new Daemon(config, logger));
  },
  status: () => (require('./cli/status') as typeof import('./cli/status')).registerStatus,
  events: () => (require('./cli/events') as typeof import('./cli/events')).registerEvents,
  move: () => (require('./cli/move') as typeof import('./cli/move')).registerMove,
  cordon: () => (require('./cli/cordon') as typeof import('./cli/cordon')).registerCordon,
  uncordon: () => (require('./cli/cordon') as typeof import('./cli/cordon')).registerUncordon,
  dhcp: () => (require('./cli/dhcp') as typeof import('./cli/dhcp')).registerDhcp,
  token: () => (require('./cli/token') as typeof import('./cli/token')).registerToken,
  ca: () => (require('./cli/ca') as typeof import('./cli/ca')).registerCa,
  doctor: () => (require('./doctor/command') as typeof import('./doctor/command')).registerDoctor,
  init: () => (require('./cli/init') as typeof import('./cli/init')).registerInit,
  join: () => (require('./cli/join') as typeof import('./cli/join')).registerJoin,
  node: () => (require('./cli/node') as typeof import('./cli/node')).registerNode,
  completion: () => (require('./cli/completion') as typeof import('./cli/completion')).registerCompletion,
};
/* eslint-enable @typescript-eslint/no-require-imports */

/** The command argv names, if it names one; otherwise (help, --version, a typo) every command is needed. */
function namedCommand(argv: string[]): string | undefined {
  const first = argv[2];
  return first !== undefined && first !== 'completion' && Object.hasOwn(commands, first) ? first : undefined;
}

/** The whole CLI, or only the one command `only` names. */
export function buildProgram(only?: string): Command {
  const program = new Command('vipd')
    .description('One floating management VIP for a bare-metal cluster, elected through etcd.')
    .version(version)
    .exitOverride()
    .showHelpAfterError();
  for (const [name, load] of Object.entries(commands)) if (only === undefined || only === name) load()(program);
  return program;
}

/** Writes to stderr and exits once the write has gone out: to a pipe, writes are asynchronous. */
function fail(message: string, code: number): void {
  process.exitCode = code;
  process.stderr.write(message, () => process.exit(code));
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram(namedCommand(argv)).parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? 0 : EXIT_BAD_INPUT;
      return;
    }
    // The agent may have opened sockets that would keep the process alive: exit explicitly.
    // Loaded already if the error is one: an error from any other module need not load the schemas.
    const { InputError } = require('./config/schema-check') as typeof import('./config/schema-check');
    if (error instanceof InputError) fail(`vipd: ${error.message}\n`, EXIT_BAD_INPUT);
    else fail(`vipd: ${(error as Error).stack ?? String(error)}\n`, EXIT_UNAVAILABLE);
  }
}

if (require.main === module) void main(process.argv);
