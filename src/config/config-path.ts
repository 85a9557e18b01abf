import { existsSync } from 'node:fs';
import { InputError } from './schema-check';

/** Where `vipd init` and `vipd join` write the config, and where every command looks last. */
export const DEFAULT_CONFIG_PATH = '/etc/vipd/config.yaml';

/** What the lookup reads: the process's environment and filesystem, replaceable in tests. */
export interface ConfigLookup {
  env: Record<string, string | undefined>;
  exists: (path: string) => boolean;
}

const realLookup: ConfigLookup = { env: process.env, exists: existsSync };

/**
 * The config a command uses, as kubectl finds its kubeconfig: the flag, then $VIPD_CONFIG,
 * then /etc/vipd/config.yaml. Null when none is given and the default file is absent.
 */
export function findConfigPath(flag: string | undefined, lookup: ConfigLookup = realLookup): string | null {
  if (flag) return flag;
  const fromEnv = lookup.env.VIPD_CONFIG;
  if (fromEnv) return fromEnv;
  return lookup.exists(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : null;
}

/** Like findConfigPath, but a missing config is bad input that names all three places. */
export function requireConfigPath(flag: string | undefined, lookup: ConfigLookup = realLookup): string {
  const found = findConfigPath(flag, lookup);
  if (found) return found;
  throw new InputError('--config', `no config file: give --config FILE, set VIPD_CONFIG, or create ${DEFAULT_CONFIG_PATH} (vipd init and vipd join write it)`);
}

/** The help text of every --config option that falls back to the defaults. */
export const CONFIG_OPTION_HELP = `the YAML config file (default: $VIPD_CONFIG, then ${DEFAULT_CONFIG_PATH})`;
