import type { Command } from 'commander';
import { CONFIG_OPTION_HELP } from '../config/config-path';
import { X509Certificate } from 'node:crypto';
import { InputError } from '../config/schema-check';
import { securityKeys } from '../store/keys';
import { withCluster } from './cluster';

/** `vipd ca`: the cluster CA's certificate (public), to pin in clients such as curl --cacert. */
export function registerCa(program: Command): void {
  program
    .command('ca')
    .description("print the cluster CA certificate (PEM) and its SHA-256 fingerprint")
    .option('-c, --config <file>', CONFIG_OPTION_HELP)
    .action(async (options: { config?: string }) => {
      await withCluster(options.config, async ({ store, keys }) => {
        const stored = await store.get(securityKeys(keys).ca);
        if (!stored) throw new InputError('--config', 'this cluster has no CA yet: it is created when the first agent starts');
        const certificate = (JSON.parse(stored.value) as { certificate: string }).certificate;
        process.stderr.write(`SHA-256 fingerprint: ${new X509Certificate(certificate).fingerprint256}\n`);
        process.stdout.write(certificate.endsWith('\n') ? certificate : `${certificate}\n`);
      });
    });
}
