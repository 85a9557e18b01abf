import type { Command } from 'commander';
import { CONFIG_OPTION_HELP } from '../config/config-path';
import { InputError } from '../config/schema-check';
import { renderOutput } from '../output/output';
import { withCluster } from './cluster';
import { readManagementAddress } from '../status/read';
import { reservationFor, type Reservation } from '../holding/dhcp-reservation';

function table(reservation: Reservation): string {
  const lines = [`MAC           ${reservation.hwaddr}`, `REQUESTED IP  ${reservation.requestedIP ?? '(none yet: set vip.address, or wait for the first lease)'}`];
  if (reservation.requestedIP) {
    lines.push(
      '',
      'Add one of these to your DHCP server so the management address never changes:',
      `  dnsmasq    ${reservation.dnsmasq}`,
      `  ISC dhcpd  ${reservation.iscDhcpd}`,
      `  Kea        ${reservation.kea}   (in the subnet's "reservations")`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** `vipd dhcp reservation`: the VIP's MAC and IP, and the lines for dnsmasq, ISC dhcpd and Kea. */
export function registerDhcp(program: Command): void {
  const dhcp = program.command('dhcp').description('DHCP mode: the VIP\'s own MAC and its reservation');
  dhcp
    .command('reservation')
    .description('print the MAC and requested IP, with reservation lines for dnsmasq, ISC dhcpd and Kea')
    .option('-c, --config <file>', CONFIG_OPTION_HELP)
    .option('-o, --output <format>', 'json, yaml or jsonpath=TEMPLATE')
    .action(async (options: { config?: string; output?: string }) => {
      await withCluster(options.config, async ({ config, store, keys }) => {
        if (config.vip.mode !== 'dhcp') throw new InputError('vip.mode', 'is static: a reservation is only needed in DHCP mode');
        const view = await readManagementAddress(store, keys, config);
        const hwaddr = view.metadata.annotations['kube-vip.io/hwaddr'];
        if (!hwaddr) throw new InputError('vip.hwaddr', 'is not set and no agent has generated one yet: start an agent first, or set vip.hwaddr');
        const reservation = reservationFor(config.cluster, hwaddr, view.metadata.annotations['kube-vip.io/requestedIP'] ?? null);
        process.stdout.write(renderOutput(options.output, reservation, () => table(reservation)));
      });
    });
}
