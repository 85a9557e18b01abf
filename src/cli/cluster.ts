import { loadConfig, type Config } from '../config/config';
import { requireConfigPath } from '../config/config-path';
import { InputError } from '../config/schema-check';
import { EtcdStore } from '../store/etcd-store';
import { ClusterKeys } from '../store/keys';
import { StoredDataError } from '../store/records';
import { isPermissionDenied } from '../store/access';
import { EXIT_UNAVAILABLE } from '../output/exit-codes';


/** What a command that reads the cluster straight from etcd works with. */
export interface ClusterContext {
  config: Config;
  store: EtcdStore;
  keys: ClusterKeys;
}

/**
 * Loads the config (the flag, $VIPD_CONFIG or /etc/vipd/config.yaml), opens etcd, runs the action and closes etcd. Bad input is thrown (exit 2);
 * anything else is reported as etcd being unreachable (exit 1).
 */
export async function withCluster(configPath: string | undefined, action: (cluster: ClusterContext) => Promise<void>): Promise<void> {
  const config = loadConfig(requireConfigPath(configPath));
  const store = new EtcdStore({ endpoints: config.etcd.endpoints, tls: config.etcd.tls, callTimeoutMs: 3000 });
  try {
    await action({ config, store, keys: new ClusterKeys(config.cluster) });
  } catch (error) {
    if (error instanceof InputError) throw error;
    if (error instanceof StoredDataError) {
      process.stderr.write(`vipd: ${error.message}\n`);
      process.exitCode = EXIT_UNAVAILABLE;
      return;
    }
    if (isPermissionDenied(error)) {
      process.stderr.write(
        'vipd: etcd refused this node\'s certificate for that: only a signing node (one with the cluster key, security.clusterKeyFile) ' +
          'may change tokens, nodes, certificates or settings; or this node was removed from the cluster (docs/security.md)\n',
      );
      process.exitCode = EXIT_UNAVAILABLE;
      return;
    }
    process.stderr.write(`vipd: cannot reach etcd at ${config.etcd.endpoints.join(', ')}: ${(error as Error).message}\n`);
    process.exitCode = EXIT_UNAVAILABLE;
  } finally {
    store.close();
  }
}
