import type { Command } from 'commander';
import { isIP } from 'node:net';
import { createInterface } from 'node:readline/promises';
import { InputError } from '../config/schema-check';
import { DEFAULT_VOTERS } from '../cluster/etcd-endpoints';
import { initCluster, type ExternalEtcd, type InitOptions, type InitResult } from '../cluster/init';
import { listInterfaces, type InterfaceChoice } from '../cluster/node-setup';
import { describeStartedAgent } from '../cluster/service';
import { DEFAULT_CONFIG_PATH } from '../config/config-path';
import { Netlink } from '../holding/netlink';
import { parseTokenTtl } from '../security/tokens';
import { reservationFor } from '../holding/dhcp-reservation';
import { EXIT_UNAVAILABLE } from '../output/exit-codes';

export const DEFAULT_DATA_DIR = '/var/lib/vipd';

export interface InitFlags {
  interface?: string;
  vip?: string;
  vipMode?: string;
  vipHwaddr?: string;
  fqdn?: string;
  cluster?: string;
  nodeName?: string;
  apiPort: string;
  dataDir: string;
  config: string;
  etcd?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdManageAccess?: boolean;
  etcdVoters: string;
  tokenTtl: string;
  yes?: boolean;
}

/** Asks on the terminal; `choices` are shown numbered and may be answered by number or name. */
export interface Prompter {
  ask(question: string, fallback?: string): Promise<string>;
  close(): void;
}

function terminalPrompter(): Prompter {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  return {
    ask: async (question, fallback) => {
      const answer = (await rl.question(fallback ? `${question} [${fallback}]: ` : `${question}: `)).trim();
      return answer || fallback || '';
    },
    close: () => rl.close(),
  };
}

/**
 * Fills in what the flags left out by asking, the way Harvester's installer console does:
 * interface from a list, VIP mode, VIP or MAC, FQDN, cluster name. Without a terminal every
 * missing value is an error naming its flag.
 */
export async function completeInteractively(flags: InitFlags, interfaces: InterfaceChoice[], prompter: Prompter | null): Promise<InitFlags> {
  const filled = { ...flags };
  const need = (flag: string): never => {
    throw new InputError(flag, 'is required (there is no terminal to ask on; give it, or run on a terminal)');
  };
  if (!filled.interface) {
    if (!prompter) need('--interface');
    const listed = interfaces.map((choice, index) => `  ${index + 1}) ${choice.name.padEnd(15)} ${choice.mac}  ${choice.addresses.join(', ') || 'no address'}${choice.usable ? '' : '  (down)'}`);
    process.stderr.write(`Management interfaces:\n${listed.join('\n')}\n`);
    const answer = await prompter!.ask('Management interface (number or name)', interfaces.length === 1 ? interfaces[0]!.name : undefined);
    filled.interface = /^\d+$/.test(answer) ? (interfaces[Number(answer) - 1]?.name ?? answer) : answer;
  }
  if (!filled.vipMode) filled.vipMode = prompter && !filled.vip ? await prompter.ask('VIP mode: static or dhcp', 'static') : 'static';
  if (filled.vipMode === 'static' && !filled.vip) {
    if (!prompter) need('--vip');
    filled.vip = await prompter!.ask('VIP address (a free address in the management subnet)');
  }
  if (filled.vipMode === 'dhcp' && !filled.vipHwaddr && prompter && !flags.yes) {
    filled.vipHwaddr = (await prompter.ask('VIP MAC address (empty: generate one)', '')) || undefined;
  }
  if (filled.fqdn === undefined && prompter && !flags.yes) filled.fqdn = (await prompter.ask('FQDN of the management address (optional)', '')) || undefined;
  if (!filled.cluster) filled.cluster = prompter && !flags.yes ? await prompter.ask('Cluster name', 'vipd') : 'vipd';
  return filled;
}

function toOptions(flags: InitFlags, progress: (line: string) => void): InitOptions {
  if (flags.vipMode !== 'static' && flags.vipMode !== 'dhcp') throw new InputError('--vip-mode', `must be "static" or "dhcp" (got "${flags.vipMode}")`);
  if (flags.vip && isIP(flags.vip) === 0) throw new InputError('--vip', `"${flags.vip}" is not an IPv4 or IPv6 address`);
  if (flags.vipMode === 'static' && flags.vipHwaddr) throw new InputError('--vip-hwaddr', 'applies to --vip-mode dhcp only');
  const apiPort = Number(flags.apiPort);
  if (!Number.isInteger(apiPort) || apiPort < 1 || apiPort > 65535) throw new InputError('--api-port', 'must be a TCP port from 1 to 65535');
  const voters = Number(flags.etcdVoters);
  if (voters !== 3 && voters !== 5) throw new InputError('--etcd-voters', 'must be 3 or 5');
  let etcd: ExternalEtcd | null = null;
  if (flags.etcd) {
    etcd = {
      endpoints: flags.etcd.split(',').map((url) => url.trim()).filter(Boolean),
      ca: flags.etcdCa ?? null,
      cert: flags.etcdCert ?? null,
      key: flags.etcdKey ?? null,
      manageAccess: flags.etcdManageAccess === true,
    };
    if ((etcd.cert === null) !== (etcd.key === null)) throw new InputError('--etcd-cert', 'and --etcd-key go together');
    if ((etcd.cert || etcd.key) && !etcd.ca) throw new InputError('--etcd-ca', 'is required with --etcd-cert and --etcd-key');
    if (etcd.manageAccess && !etcd.cert) {
      throw new InputError('--etcd-manage-access', 'needs --etcd-ca, --etcd-cert and --etcd-key: etcd (run with --client-cert-auth) takes each node\'s user from its client certificate\'s CN');
    }
  } else if (flags.etcdCa || flags.etcdCert || flags.etcdKey || flags.etcdManageAccess) {
    throw new InputError('--etcd', 'is required with --etcd-ca, --etcd-cert, --etcd-key or --etcd-manage-access (without it vipd runs its own etcd, whose access it always manages)');
  }
  return {
    cluster: flags.cluster!,
    nodeName: flags.nodeName ?? null,
    interface: flags.interface!,
    vipMode: flags.vipMode,
    vip: flags.vip ?? null,
    vipHwaddr: flags.vipHwaddr ?? null,
    fqdn: flags.fqdn?.toLowerCase() ?? null,
    apiPort,
    dataDir: flags.dataDir,
    configPath: flags.config,
    etcd,
    voters,
    tokenTtlMs: joinTokenTtl(flags.tokenTtl),
    progress,
  };
}

/** The printed join token must expire, like every join token (see TokenStore.create). */
function joinTokenTtl(text: string): number {
  const ttlMs = text === 'never' ? null : parseTokenTtl(text);
  if (ttlMs === null) throw new InputError('--token-ttl', 'a join token must expire: give a lifetime like 2h or 7d, not "never"');
  return ttlMs;
}

/** What Harvester's console shows after install: the management URL, this node, and how to join. */
export function formatInitResult(result: InitResult): string {
  const { config } = result;
  const rows: Array<[string, string]> = [
    ['Management address', result.managementUrl],
    ['This node', `${config.node.name}, ${result.nodeIp} on ${config.node.interface}`],
    ['VIP held by', result.holder ?? '(nobody yet)'],
    ['Cluster CA', `SHA-256 ${result.caFingerprint}`],
    ['Cluster store', config.etcd.embedded ? `embedded etcd (${config.etcd.embedded.clientURL})` : `etcd at ${config.etcd.endpoints.join(', ')}${result.etcdAccessManaged ? ' (vipd manages its users and roles)' : ''}`],
    ['Agent', describeStartedAgent(result.started)],
  ];
  if (config.api.fqdn) rows.splice(1, 0, ['FQDN', `https://${config.api.fqdn} (point it at the VIP in DNS)`]);
  const width = Math.max(...rows.map(([label]) => label.length));
  const lines = [`vipd cluster "${config.cluster}" is up.`, '', ...rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`), ''];
  if (result.dhcp) {
    const reservation = reservationFor(config.cluster, result.dhcp.hwaddr, result.dhcp.leasedIp);
    lines.push(
      `The VIP has its own MAC ${result.dhcp.hwaddr} and was leased ${result.dhcp.leasedIp}.`,
      'Reserve it in your DHCP server so the management address never changes:',
      `  dnsmasq    ${reservation.dnsmasq}`,
      `  ISC dhcpd  ${reservation.iscDhcpd}`,
      `  Kea        ${reservation.kea}`,
      '',
    );
  }
  const expiry = result.tokenExpires ? `the token expires ${result.tokenExpires}` : 'the token never expires';
  lines.push(
    `To add a node, run this on it (${expiry}; make more with \`vipd token create --role join\`):`,
    '',
    `  vipd join ${result.managementUrl} --token ${result.token}${result.etcdAccessManaged ? ' --etcd-cert CERT --etcd-key KEY' : ''}`,
    '',
    ...(result.etcdAccessManaged ? ['(CERT: a client certificate from the etcd\'s CA with CN vipd-node-NAME, NAME the joining node\'s name: etcd\'s user for it)', ''] : []),
    'A node joined that way holds the VIP like any other, but cannot sign (issue certificates,',
    'serve joins, mint tokens). Give one or two more nodes the cluster key, so that signing',
    'survives this node; keep the key secret, it opens the cluster CA (docs/security.md):',
    '',
    `  VIPD_CLUSTER_KEY=${result.clusterKey} vipd join ${result.managementUrl} --token ${result.token}`,
    '',
  );
  return lines.join('\n');
}

/** Reports what could not be reached in one line (exit 1); bad input goes on to the CLI (exit 2). */
export async function reportUnavailable(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (error) {
    if (error instanceof InputError) throw error;
    process.exitCode = EXIT_UNAVAILABLE;
    await new Promise<void>((resolve) => process.stderr.write(`vipd: ${(error as Error).message}\n`, () => resolve()));
  }
}

/** `vipd init`: set up the first node of a cluster. */
export function registerInit(program: Command): void {
  program
    .command('init')
    .description('set up the first node: config, cluster CA, the cluster store (embedded etcd by default), the agent, and a join token')
    .option('--interface <name>', 'the management interface')
    .option('--vip <address>', 'static: the VIP; dhcp: the address to request (optional)')
    .option('--vip-mode <mode>', 'static or dhcp')
    .option('--vip-hwaddr <mac>', 'dhcp: the VIP\'s own MAC (default: generated)')
    .option('--fqdn <name>', 'a DNS name for the management address (optional)')
    .option('--cluster <name>', 'the cluster name (default: vipd)')
    .option('--node-name <name>', 'this node\'s name (default: the hostname)')
    .option('--api-port <port>', 'the HTTPS API port', '443')
    .option('--data-dir <dir>', 'where etcd, its certificates and the logs live', DEFAULT_DATA_DIR)
    .option('-c, --config <file>', 'the config file to write', DEFAULT_CONFIG_PATH)
    .option('--etcd <urls>', 'use this external etcd (comma-separated client URLs) instead of the embedded one')
    .option('--etcd-ca <file>', 'external etcd: its CA certificate (PEM)')
    .option('--etcd-cert <file>', 'external etcd: this node\'s client certificate (PEM)')
    .option('--etcd-key <file>', 'external etcd: this node\'s client key (PEM)')
    .option('--etcd-manage-access', 'external etcd: let vipd turn on its access control and keep one user per node, as in the embedded store (--etcd-cert: CN vipd-node-NAME, or a user with etcd\'s root role)')
    .option('--etcd-voters <n>', 'embedded etcd: how many nodes become voting members (3 or 5)', String(DEFAULT_VOTERS))
    .option('--token-ttl <duration>', 'lifetime of the join token printed at the end: 30m, 24h or 7d (a join token always expires)', '24h')
    .option('-y, --yes', 'ask nothing: take every value from the flags')
    .action(async (flags: InitFlags) => {
      await reportUnavailable(async () => {
        const prompter = process.stdin.isTTY && !flags.yes ? terminalPrompter() : null;
        let filled: InitFlags;
        try {
          const netlink = Netlink.open();
          const interfaces = await listInterfaces(netlink).finally(() => netlink.close());
          filled = await completeInteractively(flags, interfaces, prompter);
          const options = toOptions(filled, (line) => process.stderr.write(`${line}\n`));
          if (prompter) {
            const vip = options.vipMode === 'static' ? options.vip : `DHCP (MAC ${options.vipHwaddr ?? 'generated'})`;
            const confirm = await prompter.ask(`Create cluster "${options.cluster}" with VIP ${vip} on ${options.interface}? (yes/no)`, 'yes');
            if (!/^y(es)?$/i.test(confirm)) throw new InputError('', 'cancelled: nothing was written');
          }
          prompter?.close();
          const result = await initCluster(options);
          process.stdout.write(formatInitResult(result));
        } finally {
          prompter?.close();
        }
      });
    });
}
