import type { Command } from 'commander';
import { InputError } from '../config/schema-check';
import { joinCluster, type JoinResult } from '../cluster/join';
import { describeStartedAgent } from '../cluster/service';
import { DEFAULT_CONFIG_PATH } from '../config/config-path';
import { DEFAULT_DATA_DIR, reportUnavailable } from './init';

interface JoinFlags {
  token?: string;
  nodeName?: string;
  interface?: string;
  dataDir: string;
  config: string;
  etcdCert?: string;
  etcdKey?: string;
  clusterKey?: string;
}

export function formatJoinResult(result: JoinResult): string {
  const { config } = result;
  const rows: Array<[string, string]> = [
    ['Management address', result.managementUrl],
    ['This node', `${config.node.name}, ${result.nodeIp} on ${config.node.interface}`],
    ['Cluster store', result.role === 'etcd member' ? `etcd member (${config.etcd.embedded?.clientURL ?? ''})` : `${result.role}, etcd at ${config.etcd.endpoints.join(', ')}`],
    ['Cluster CA', `SHA-256 ${result.caFingerprint}`],
    ['Signs', result.signer ? 'yes: holds the cluster key (issues certificates, serves joins)' : 'no: joins through it are passed on to a signing node'],
    ['Agent', describeStartedAgent(result.started)],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return [`${config.node.name} joined cluster "${config.cluster}" (registered by ${result.servedBy}).`, '', ...rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`), ''].join('\n');
}

/** `vipd join https://VIP-or-FQDN --token TOKEN`: add this node to a cluster. */
export function registerJoin(program: Command): void {
  program
    .command('join')
    .description('join this node to a cluster through its management address, trusting the CA the token names')
    .argument('<server>', 'the management address: https://VIP or https://FQDN')
    .option('--token <token>', 'the join token from `vipd init` or `vipd token create --role join` (default: $VIPD_JOIN_TOKEN)')
    .option('--node-name <name>', 'this node\'s name (default: the hostname)')
    .option('--interface <name>', 'the management interface (default: the one in the VIP\'s subnet)')
    .option('--data-dir <dir>', 'where etcd, its certificates and the logs live', DEFAULT_DATA_DIR)
    .option('-c, --config <file>', 'the config file to write', DEFAULT_CONFIG_PATH)
    .option('--etcd-cert <file>', 'external etcd only: this node\'s client certificate (PEM)')
    .option('--etcd-key <file>', 'external etcd only: this node\'s client key (PEM)')
    .option('--cluster-key <key>', 'the cluster key `vipd init` printed: this node will sign (issue certificates, serve joins) (default: $VIPD_CLUSTER_KEY)')
    .action(async (server: string, flags: JoinFlags) => {
      await reportUnavailable(async () => {
        // From the environment, the token stays out of `ps` and shell history.
        const token = flags.token ?? process.env['VIPD_JOIN_TOKEN'];
        if (!token) throw new InputError('--token', 'is required (or set VIPD_JOIN_TOKEN)');
        if (Boolean(flags.etcdCert) !== Boolean(flags.etcdKey)) throw new InputError('--etcd-cert', 'and --etcd-key go together');
        const result = await joinCluster({
          server,
          token,
          nodeName: flags.nodeName ?? null,
          interface: flags.interface ?? null,
          dataDir: flags.dataDir,
          configPath: flags.config,
          etcdCert: flags.etcdCert ?? null,
          etcdKey: flags.etcdKey ?? null,
          // From the environment, the key stays out of `ps` and shell history.
          clusterKey: flags.clusterKey ?? process.env['VIPD_CLUSTER_KEY'] ?? null,
          progress: (line) => process.stderr.write(`${line}\n`),
        });
        process.stdout.write(formatJoinResult(result));
      });
    });
}
