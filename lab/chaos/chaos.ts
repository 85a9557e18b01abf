/**
 * `npm run chaos -- --seed N --faults 200 --nodes 3|5`: a seeded sequence of faults on a
 * lab of network namespaces, with vipd's invariants checked throughout. Exits 0 when every
 * invariant held, 1 on any violation, 2 on bad options. Needs root.
 */
import { FAULT_KINDS } from './fault-catalog';
import { PENDING_MULTI_MEMBER_FAULTS } from './etcd-topology';
import { freshSeed } from './prng';
import { DEFAULT_OPTIONS, formatReport, runChaos, type ChaosOptions } from './runner';

const USAGE = `usage: npm run chaos -- [options]
  --seed N            the PRNG seed (default: a fresh one, printed)
  --faults N          how many fault steps (default ${DEFAULT_OPTIONS.faults})
  --nodes 3|5         lab nodes (default ${DEFAULT_OPTIONS.nodes})
  --profile P         default | fast (default ${DEFAULT_OPTIONS.profile})
  --etcd T            single | embedded (default ${DEFAULT_OPTIONS.etcd}; embedded: vipd init + join, an etcd
                      member beside the agent on the first 3 nodes, 5 from --nodes 5; needs --nodes >= 3)
  --overlap P         probability of a second fault during the first (default ${DEFAULT_OPTIONS.overlap})
  --kinds a,b         only these fault kinds (see --list-faults)
  --bound-ms N        availability bound (default leaseTTL + 2 s + maxProbeWait = 7000)
  --token-check N     run \`vipd token list\` every N steps (default ${DEFAULT_OPTIONS.tokenCheckEvery})
  --keep-going        do not stop at the first violation
  --json PATH         also write the full report as JSON
  --list-faults       list the fault kinds and exit`;

class UsageError extends Error {}

function parseArgs(argv: string[]): { options: Omit<ChaosOptions, 'log'>; json: string | null; list: boolean } {
  const options: Omit<ChaosOptions, 'log'> = { ...DEFAULT_OPTIONS, seed: freshSeed() };
  let json: string | null = null;
  let list = false;
  const integer = (flag: string, text: string | undefined, min: number, max: number): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`${flag}: must be a whole number from ${min} to ${max}`);
    return value;
  };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i]!;
    const value = (): string | undefined => argv[++i];
    switch (flag) {
      case '--seed':
        options.seed = integer(flag, value(), 0, 0xffffffff);
        break;
      case '--faults':
        options.faults = integer(flag, value(), 1, 100_000);
        break;
      case '--nodes':
        options.nodes = integer(flag, value(), 2, 9);
        break;
      case '--profile': {
        const profile = value();
        if (profile !== 'default' && profile !== 'fast') throw new UsageError('--profile: must be default or fast');
        options.profile = profile;
        break;
      }
      case '--etcd': {
        const kind = value();
        if (kind !== 'single' && kind !== 'embedded') throw new UsageError('--etcd: must be single or embedded');
        options.etcd = kind;
        break;
      }
      case '--overlap': {
        const p = Number(value());
        if (!(p >= 0 && p <= 1)) throw new UsageError('--overlap: must be a probability from 0 to 1');
        options.overlap = p;
        break;
      }
      case '--kinds': {
        const kinds = (value() ?? '').split(',').filter(Boolean);
        const unknown = kinds.filter((kind) => !FAULT_KINDS.some((known) => known.name === kind));
        if (kinds.length === 0 || unknown.length > 0) throw new UsageError(`--kinds: unknown ${unknown.join(', ') || '(none given)'}; see --list-faults`);
        options.kinds = kinds;
        break;
      }
      case '--bound-ms':
        options.boundMs = integer(flag, value(), 100, 600_000);
        break;
      case '--token-check':
        options.tokenCheckEvery = integer(flag, value(), 1, 100_000);
        break;
      case '--keep-going':
        options.keepGoing = true;
        break;
      case '--json':
        json = value() ?? null;
        if (!json) throw new UsageError('--json: needs a path');
        break;
      case '--list-faults':
        list = true;
        break;
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown option ${flag}`);
    }
  }
  if (options.etcd === 'embedded' && options.nodes < 3) throw new UsageError('--etcd embedded: needs --nodes 3 or more (etcd voters)');
  const refused = (options.kinds ?? []).filter((name) => FAULT_KINDS.some((kind) => kind.name === name && kind.onlyOn && !kind.onlyOn.includes(options.etcd)));
  if (refused.length) throw new UsageError(`--kinds: not run on the ${options.etcd} etcd topology: ${refused.join(', ')}`);
  return { options, json, list };
}

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`chaos: ${error.message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (parsed.list) {
    for (const kind of FAULT_KINDS) {
      const only = kind.onlyOn ? ` (--etcd ${kind.onlyOn.join('|')} only)` : '';
      process.stdout.write(`${kind.name.padEnd(22)} weight ${String(kind.weight).padEnd(4)} ${kind.summary}${only}\n`);
    }
    process.stdout.write('\npending (multi-member faults not written yet):\n');
    for (const kind of PENDING_MULTI_MEMBER_FAULTS) process.stdout.write(`${kind.name.padEnd(24)} ${kind.what}\n`);
    return;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('chaos: run as root: the lab creates network namespaces\n');
    process.exit(2);
  }
  const started = new Date();
  process.stderr.write(`chaos: seed ${parsed.options.seed}, started ${started.toISOString()}\n`);
  const report = await runChaos({ ...parsed.options, log: (line) => process.stderr.write(`${line}\n`) });
  process.stdout.write(`${formatReport(report)}\n`);
  if (parsed.json) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(parsed.json, `${JSON.stringify(report, null, 2)}\n`);
  }
  process.exitCode = report.violations.length === 0 ? 0 : 1;
}

main().catch((error: Error) => {
  process.stderr.write(`chaos: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
