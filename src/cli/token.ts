import type { Command } from 'commander';
import { CONFIG_OPTION_HELP } from '../config/config-path';
import { InputError } from '../config/schema-check';
import { EtcdKeyValue } from '../store/kv';
import { securityKeys } from '../store/keys';
import { parseTokenTtl, parseTokenUses, TOKEN_ROLES, TokenStore, type TokenRole } from '../security/tokens';
import { renderOutput } from '../output/output';
import { withCluster } from './cluster';
import { EXIT_BAD_INPUT } from '../output/exit-codes';

/** Runs one action against the cluster's token store. */
async function withTokenStore(configPath: string | undefined, action: (tokens: TokenStore, node: string) => Promise<void>): Promise<void> {
  await withCluster(configPath, async ({ store, keys, config }) => await action(new TokenStore(new EtcdKeyValue(store), securityKeys(keys)), config.node.name));
}

function parseRole(text: string): TokenRole {
  if (!(TOKEN_ROLES as readonly string[]).includes(text)) {
    throw new InputError('--role', `must be "read", "admin" or "join" (got "${text}")`);
  }
  return text as TokenRole;
}

/** `vipd token create|list|delete`: bearer tokens for the HTTPS API and dashboard. */
export function registerToken(program: Command): void {
  const token = program.command('token').description('manage API tokens (stored hashed in etcd)');

  token
    .command('create')
    .description('create a token and print it once; only its hash is stored')
    .requiredOption('--role <role>', 'read (status, nodes, events), admin (also moves and certificates) or join (lets a new node join)')
    .option('--ttl <duration>', 'lifetime: 30m, 24h, 7d, or "never" (read and admin tokens only)', '24h')
    .option('--uses <count>', 'join tokens: how many nodes may join with it, 1 to 1000, or "unlimited" until it expires', 'unlimited')
    .option('--description <text>', 'what the token is for, shown by `token list`')
    .option('-c, --config <file>', CONFIG_OPTION_HELP)
    .action(async (options: { role: string; ttl: string; uses: string; description?: string; config?: string }, command: Command) => {
      const role = parseRole(options.role);
      const ttlMs = parseTokenTtl(options.ttl);
      if (role === 'join' && ttlMs === null) {
        throw new InputError('--ttl', 'a join token must expire: give a lifetime like 2h or 7d ("never" is only for read and admin tokens)');
      }
      const usesGiven = command.getOptionValueSource('uses') === 'cli';
      if (usesGiven && role !== 'join') throw new InputError('--uses', 'only join tokens have a use limit');
      const uses = role === 'join' ? parseTokenUses(options.uses) : null;
      await withTokenStore(options.config, async (tokens, node) => {
        const created = await tokens.create({ role, ttlMs, uses, createdOn: node, ...(options.description ? { description: options.description } : {}) });
        // The token alone on stdout, so `TOKEN=$(vipd token create …)` works; the note goes to stderr.
        process.stdout.write(`${created.token}\n`);
        const expires = created.record.expires ? `expires ${created.record.expires}` : 'never expires';
        const limit = role !== 'join' ? '' : uses === null ? ', any number of joins' : `, ${uses} join${uses === 1 ? '' : 's'}`;
        process.stderr.write(
          `created token ${created.record.id} (role ${role}, ${expires}${limit}); copy it now: it cannot be shown again\n`,
        );
      });
    });

  token
    .command('list')
    .description('list tokens: id, role, expiry, description (never the secret)')
    .option('-o, --output <format>', 'json, yaml or jsonpath=TEMPLATE (kubectl syntax)')
    .option('-c, --config <file>', CONFIG_OPTION_HELP)
    .action(async (options: { output?: string; config?: string }) => {
      await withTokenStore(options.config, async (tokens) => {
        const records = await tokens.list();
        const table = (): string => {
          if (records.length === 0) return 'no tokens\n';
          const rows = [
            ['ID', 'ROLE', 'EXPIRES', 'USES LEFT', 'CREATED', 'MADE ON', 'DESCRIPTION'],
            ...records.map((record) => [
              record.id,
              record.role,
              record.expired ? `expired ${record.expires}` : (record.expires ?? 'never'),
              // Join tokens: what is left of the limit, or how many joins an unlimited one has let through.
              record.role !== 'join' ? '-' : record.remaining === null || record.remaining === undefined ? `unlimited (${record.used ?? 0} used)` : `${record.remaining} of ${record.uses}`,
              record.created,
              record.createdOn ?? '-',
              record.description,
            ]),
          ];
          const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
          return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()).join('\n') + '\n';
        };
        process.stdout.write(renderOutput(options.output, { tokens: records }, table));
      });
    });

  token
    .command('delete')
    .description('delete a token; requests with it fail from then on')
    .argument('<id>', 'the token id, as `token list` shows it (the part after vipd_)')
    .option('-c, --config <file>', CONFIG_OPTION_HELP)
    .action(async (id: string, options: { config?: string }) => {
      await withTokenStore(options.config, async (tokens) => {
        if (await tokens.delete(id)) {
          process.stdout.write(`deleted token ${id}\n`);
        } else {
          process.stderr.write(`vipd: no token with id ${JSON.stringify(id)}\n`);
          process.exitCode = EXIT_BAD_INPUT;
        }
      });
    });
}
