import type { Command } from 'commander';
import { loadConfig } from '../config/config';
import { CONFIG_OPTION_HELP, requireConfigPath } from '../config/config-path';
import { runDoctor } from './run';
import { doctorExitCode, formatDoctorTable } from './report';
import { renderOutput } from '../output/output';
import { EXIT_UNAVAILABLE } from '../output/exit-codes';

const EXIT_CODES = `
Exit codes:
  0  no check failed (warnings and skipped checks allowed)
  1  etcd could not be reached at all (the etcd check fails, the checks that need it are skipped)
  2  bad input: the config file, or a flag
  3  at least one check failed

Checks: etcd, clock, renewal-latency, subnet, mtu, layer2, vip-answers, dhcp-reservation,
api-certificate, firewall. Each says ok, warn, fail or skip (with the reason), and each
warning or failure says how to fix it.
`;

/** `vipd doctor`: checks vipd's requirements from this node, one verdict per requirement. */
export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description("check vipd's requirements from this node: etcd, clocks, subnet, layer 2, the VIP, DHCP, the API certificate, firewalls")
    .option('-c, --config <file>', CONFIG_OPTION_HELP)
    .option('-o, --output <format>', 'json or yaml (default: a table)')
    .addHelpText('after', EXIT_CODES)
    .action(async (options: { config?: string; output?: string }) => {
      const config = loadConfig(requireConfigPath(options.config));
      // A bad -o is bad input: say so before spending seconds on the checks.
      renderOutput(options.output, {}, () => '');
      const { report, etcdReachable } = await runDoctor(config);
      process.stdout.write(renderOutput(options.output, report, () => formatDoctorTable(report)));
      process.exitCode = etcdReachable ? doctorExitCode(report) : EXIT_UNAVAILABLE;
    });
}
