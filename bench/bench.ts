/**
 * `npm run bench`: failover of vipd side by side with keepalived (VRRPv3), measured from a
 * client on the same segment. See bench/README.md for what each figure means.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Lab } from '../lab/lab';
import { isCentiseconds, masterDownIntervalMs } from '../lab/keepalived';
import { VipObserver } from '../lab/observer';
import { mustRun, run, waitFor } from '../lab/shell';
import { ClientProbes, type ArpIdentity } from './client-probes';
import { measureIdle } from './footprint';
import { compare, formatTables, LEFT_OUT_OF_QUICK, summarizeScenario, type RunOverlap, type SystemResult } from './report';
import { NodeServices, SERVICE_CHECK } from './service';
import { EMBEDDED_SCENARIOS, emptyRecord, recoverAll, runTrial, SCENARIO_IDS, SERVICE_SCENARIOS, settle, type ScenarioId, type TrialContext, type TrialRecord, type TrialTimings } from './scenarios';
import { round } from './stats';
import { EmbeddedVipdSystem, KeepalivedSystem, SYSTEM_IDS, VipdSystem, type SystemId, type SystemUnderTest } from './systems';

const REPO = resolve(__dirname, '..', '..');
const RESULTS = join(REPO, 'bench', 'results');
/** The fast profile's hold timeout, which keepalived's detection time is matched to. */
const FAST_HOLD_TIMEOUT_MS = 200;
const PROBE_INTERVAL_MS = 5;
/** The service prober opens a connection per request: 10 ms keeps it light on the 2-core lab host. */
const SERVICE_PROBE_INTERVAL_MS = 10;

interface Options {
  quick: boolean;
  trials: number;
  idleSeconds: number;
  out: string | null;
  systems: SystemId[];
  scenarios: ScenarioId[];
  matchedAdvertInt: number;
  arpIdentity: ArpIdentity;
  keepalivedPriorities: 'distinct' | 'equal';
  keepLogs: boolean;
  /** etcd members (and nodes) of the embedded systems. */
  members: 3 | 5;
}

const USAGE = `usage: npm run bench -- [options]
  --quick                  2 trials per scenario, 5 s idle window; of the embedded systems only the fast one,
                           on a lean subset of scenarios; holder-service-dies on the fast pair only (CI)
  --trials N               trials per scenario and system (default 20)
  --idle SECONDS           idle window for the footprint (default 60, --quick 5)
  --out PATH               also write the JSON here (always: bench/results/latest.json)
  --systems a,b            subset of ${SYSTEM_IDS.join(',')}
  --scenarios a,b          subset of ${SCENARIO_IDS.join(',')}
  --matched-advert-int S   keepalived's advert_int matched to vipd's fast profile (default: derived, 0.05)
  --arp-identity separate|client   who the ARP prober asks as (default separate; see bench/README.md)
  --keepalived-priorities distinct|equal   100/150/200 with nopreempt (default), or 100 everywhere
  --members 3|5            etcd members, one per node, of the vipd-embedded-* systems (default 3)
  --no-logs                do not copy the agents' logs to bench/results/logs/`;

/**
 * The largest advert_int (VRRPv3 counts centiseconds) whose master down interval does not
 * exceed vipd's fast hold timeout, so keepalived is never handicapped by a longer timer.
 */
export function matchedAdvertInt(holdTimeoutMs = FAST_HOLD_TIMEOUT_MS): number {
  let centiseconds = 1;
  while (masterDownIntervalMs((centiseconds + 1) / 100) <= holdTimeoutMs) centiseconds += 1;
  return centiseconds / 100;
}

function list<T extends string>(text: string | undefined, allowed: readonly T[], what: string): T[] {
  if (!text) return [...allowed];
  const items = text.split(',').map((item) => item.trim()).filter(Boolean);
  for (const item of items) if (!allowed.includes(item as T)) throw new Error(`unknown ${what} "${item}" (one of ${allowed.join(', ')})`);
  return items as T[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      trials: { type: 'string' },
      idle: { type: 'string' },
      out: { type: 'string' },
      systems: { type: 'string' },
      scenarios: { type: 'string' },
      'matched-advert-int': { type: 'string' },
      'arp-identity': { type: 'string', default: 'separate' },
      'keepalived-priorities': { type: 'string', default: 'distinct' },
      'no-logs': { type: 'boolean', default: false },
      members: { type: 'string', default: '3' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const quick = values.quick === true;
  const trials = values.trials ? Number(values.trials) : quick ? 2 : 20;
  const idleSeconds = values.idle ? Number(values.idle) : quick ? 5 : 60;
  if (!Number.isInteger(trials) || trials < 1) throw new Error('--trials must be a whole number ≥ 1');
  if (!(idleSeconds > 0)) throw new Error('--idle must be a positive number of seconds');
  const matched = values['matched-advert-int'] ? Number(values['matched-advert-int']) : matchedAdvertInt();
  const identity = values['arp-identity'];
  if (identity !== 'separate' && identity !== 'client') throw new Error('--arp-identity must be separate or client');
  const priorities = values['keepalived-priorities'];
  if (priorities !== 'distinct' && priorities !== 'equal') throw new Error('--keepalived-priorities must be distinct or equal');
  if (!isCentiseconds(matched)) throw new Error('--matched-advert-int must be a positive multiple of 0.01 s');
  const members = Number(values.members);
  if (members !== 3 && members !== 5) throw new Error('--members must be 3 or 5');
  return {
    quick,
    trials,
    idleSeconds,
    out: values.out ?? null,
    systems: values.systems ? list(values.systems, SYSTEM_IDS, 'system') : [...(quick ? QUICK_SYSTEMS : SYSTEM_IDS)],
    scenarios: list(values.scenarios, SCENARIO_IDS, 'scenario'),
    matchedAdvertInt: matched,
    arpIdentity: identity,
    keepalivedPriorities: priorities,
    keepLogs: values['no-logs'] !== true,
    members,
  };
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function label(id: SystemId, options: Options): string {
  switch (id) {
    case 'vipd-default':
      return 'vipd default';
    case 'vipd-fast':
      return 'vipd fast';
    case 'vipd-embedded-default':
      return `vipd emb. default ${options.members}m`;
    case 'vipd-embedded-fast':
      return `vipd emb. fast ${options.members}m`;
    case 'keepalived-1':
      return 'keepalived 1s';
    case 'keepalived-matched':
      return `keepalived ${options.matchedAdvertInt}s`;
  }
}

function makeSystem(id: SystemId, lab: Lab, options: Options): SystemUnderTest {
  switch (id) {
    case 'vipd-default':
    case 'vipd-fast':
      return new VipdSystem(id, lab);
    case 'vipd-embedded-default':
    case 'vipd-embedded-fast':
      return new EmbeddedVipdSystem(id, lab, options.members);
    case 'keepalived-1':
      return new KeepalivedSystem(id, lab, 1, options.keepalivedPriorities);
    case 'keepalived-matched':
      return new KeepalivedSystem(id, lab, options.matchedAdvertInt, options.keepalivedPriorities);
  }
}

const TIMINGS: TrialTimings = {
  freezeMs: 3000,
  partitionMs: 5000,
  tailMs: 500,
  stableMs: 1000,
  recoverTimeoutMs: 30_000,
  settleTimeoutMs: 60_000,
  memberFreezeMs: 20_000,
  observeMs: 5000,
};

const EMBEDDED: ReadonlySet<SystemId> = new Set(['vipd-embedded-default', 'vipd-embedded-fast']);

/**
 * --quick: an embedded system takes a minute to set up (init, joins) and its scenarios are
 * slow (a node restarting its etcd member, a 20 s freeze), so CI runs only the fast one, and
 * on a lean subset: the holder's node dying and a non-holder etcd leader's node dying. Not
 * the holder dying *with* the leadership: the holder now moves etcd leadership off itself, so
 * placing it there for the trial is a race the bench can lose several times in a row.
 */
const QUICK_EMBEDDED_SCENARIOS: ReadonlySet<ScenarioId> = new Set(['holder-dies-not-leader', 'leader-nonholder-dies']);
const QUICK_SYSTEMS: readonly SystemId[] = SYSTEM_IDS.filter((id) => id !== 'vipd-embedded-default');

/**
 * --quick runs the service scenario on the fast pair alone: it restarts every agent twice
 * (check on, check off) and waits for `rise` after each trial, and the default pair goes
 * through the same code.
 */
const QUICK_SERVICE_SYSTEMS: ReadonlySet<SystemId> = new Set(['vipd-fast', 'keepalived-matched']);

/** Why a scenario is not run on a system, or null. */
function notApplicable(id: SystemId, scenario: ScenarioId, options: Options): string | null {
  if (EMBEDDED_SCENARIOS.has(scenario) && !EMBEDDED.has(id)) return 'needs its own etcd members (vipd-embedded-*)';
  if (SERVICE_SCENARIOS.has(scenario) && EMBEDDED.has(id)) return 'measured on the external-etcd systems: the health path does not depend on where etcd runs';
  if (options.quick && SERVICE_SCENARIOS.has(scenario) && !QUICK_SERVICE_SYSTEMS.has(id)) return LEFT_OUT_OF_QUICK;
  if (options.quick && EMBEDDED.has(id) && !QUICK_EMBEDDED_SCENARIOS.has(scenario)) return LEFT_OUT_OF_QUICK;
  return null;
}

function logTails(system: SystemUnderTest): Record<string, string> {
  return Object.fromEntries(system.lab.nodes.map((node) => [node.name, system.logTail(node, 20)]));
}

function describeTrial(record: TrialRecord): string {
  const show = (value: number | null): string => (value === null ? '–' : `${Math.round(value)} ms`);
  const moved = record.newHolder ? `${record.oldHolder}→${record.newHolder}` : `${record.oldHolder} kept it`;
  const extra = `${record.extraReleases ? `, ${record.extraReleases} extra release(s)` : ''}${record.moves > 1 ? `, ${record.moves} moves` : ''}${record.holderReleases && !record.newHolder ? `, holder dropped it ${record.holderReleases}×` : ''}`;
  const leader = record.etcdLeader !== null ? `; etcd leader ${record.etcdLeader}${record.faultNode && record.faultNode !== record.oldHolder ? `, fault on ${record.faultNode}` : ''}, after ${record.etcdLeaderAfter ?? '?'}` : '';
  const service = record.serviceMs !== null ? `service back ${show(record.serviceMs)}, ` : '';
  const base = `${service}outage ${show(record.outageMs)}, garp ${show(record.garpMs)}, overlap ${Math.round(record.addressOverlapMs)}/${record.arpOverlapMs} ms (${moved}${extra}${leader})`;
  return record.ok ? base : `FAILED: ${record.error} [${base}]`;
}

/**
 * Every moment two nodes held the VIP during the whole run, cold start and the settling
 * between trials included, each placed in the phase it fell in.
 */
function placeOverlaps(observer: VipObserver, trials: TrialRecord[], labStartedAt: number): RunOverlap[] {
  const windows = trials.filter((trial) => trial.faultAtMs !== null && trial.windowMs !== null);
  return observer.overlaps().map((overlap) => {
    const atMs = Number(overlap.at) / 1e6;
    const inside = windows.find((trial) => atMs >= trial.faultAtMs! && atMs <= trial.faultAtMs! + trial.windowMs!);
    const before = windows.filter((trial) => trial.faultAtMs! <= atMs).at(-1);
    const phase = inside
      ? `${inside.scenario} trial ${inside.trial}`
      : before
        ? `after ${before.scenario} trial ${before.trial} (restoring or settling)`
        : 'cold start and first settle';
    return { nodes: `${overlap.first}+${overlap.second}`, atMs: round(atMs - labStartedAt), durationMs: round(overlap.durationMs), phase, inTrialWindow: inside !== undefined };
  });
}

/** False once something else removed the lab's namespaces or directory. */
function labIntact(lab: Lab): boolean {
  const namespaces = [lab.switchNs, lab.clientNs, ...lab.nodes.map((node) => node.namespace)];
  return existsSync(lab.dir) && namespaces.every((name) => existsSync(`/run/netns/${name}`));
}

function saveLogs(system: SystemUnderTest): void {
  const target = join(RESULTS, 'logs', system.id);
  try {
    mkdirSync(target, { recursive: true });
    const keep = (name: string): boolean => name.endsWith('.log') || name.endsWith('.conf') || name.endsWith('.yaml');
    for (const name of readdirSync(system.lab.dir)) {
      if (keep(name)) copyFileSync(join(system.lab.dir, name), join(target, name));
    }
    // The embedded systems: each node's data dir (config, the init/join agent's log, etcd's log).
    const nodes = join(system.lab.dir, 'nodes');
    if (existsSync(nodes)) {
      for (const node of readdirSync(nodes)) {
        for (const name of readdirSync(join(nodes, node)).filter(keep)) copyFileSync(join(nodes, node, name), join(target, `${node}-${name}`));
      }
    }
  } catch (error) {
    log(`could not keep the logs of ${system.id}: ${(error as Error).message}`);
  }
}

async function runSystem(id: SystemId, options: Options): Promise<SystemResult> {
  const result: SystemResult = {
    id,
    label: label(id, options),
    available: true,
    reason: null,
    error: null,
    settings: {},
    footprint: null,
    scenarios: {},
    trials: [],
    failures: [],
    overlaps: [],
  };
  let lab: Lab | null = null;
  let system: SystemUnderTest | null = null;
  let probes: ClientProbes | null = null;
  let observer: VipObserver | null = null;
  let services: NodeServices | null = null;
  const labStartedAt = nowMs();
  try {
    lab = await Lab.create({ nodes: EMBEDDED.has(id) ? options.members : 3, ...(id === 'vipd-fast' ? { config: { election: { profile: 'fast' } } } : {}) });
    // Linux ignores ARP updates for a neighbour for locktime (1 s) after the last one; the
    // same setting for every system, so a move right after another one is seen at once.
    await mustRun('ip', ['netns', 'exec', lab.clientNs, 'sysctl', '-q', '-w', 'net.ipv4.neigh.eth0.locktime=0']);
    system = makeSystem(id, lab, options);
    result.settings = { ...system.settings };
    log(`${result.label}: lab ${lab.prefix} up`);
    const reason = await system.prepare();
    if (reason) {
      result.available = false;
      result.reason = reason;
      log(`${result.label}: not available: ${reason}`);
      return result;
    }
    const macs = new Map<string, string>();
    for (const node of lab.nodes) macs.set(node.name, await lab.mac(node));
    probes = await ClientProbes.start(lab, { intervalMs: PROBE_INTERVAL_MS, arpIdentity: options.arpIdentity });
    observer = await VipObserver.start(lab.vip, lab.nodes, PROBE_INTERVAL_MS);
    const ctx: TrialContext = { system, lab, observer, probes, macs, timings: TIMINGS, log };

    // Cold start: every agent at once, to the first reply the client gets from the VIP.
    const startedAt = nowMs();
    await system.startAll();
    const firstReply = await waitFor('the VIP to answer after the cold start', () => probes?.firstReplyAfter(startedAt) ?? undefined, 60_000, 5);
    const startToReachableMs = round(firstReply - startedAt);
    const holder = await settle(ctx);
    // Read after settling: the watchers report through pipes, a little behind the client's ping.
    const firstHeld = observer.intervals[0];
    const startToVipMs = firstHeld ? round(Number(firstHeld.from) / 1e6 - startedAt) : null;
    const garps = [...macs.values()].flatMap((mac) => probes?.announcementTimes(mac, startedAt, firstReply + 1000) ?? []);
    const startToGarpMs = garps.length ? round(Math.min(...garps) - startedAt) : null;
    log(`${result.label}: cold start: VIP on a node after ${startToVipMs} ms, first GARP ${startToGarpMs} ms, first reply ${Math.round(startToReachableMs)} ms`);
    log(`${result.label}: measuring idle footprint for ${options.idleSeconds} s`);
    result.footprint = { ...(await measureIdle(system, observer, holder.name, options.idleSeconds * 1000)), startToReachableMs, startToVipMs, startToGarpMs };

    let consecutiveFailures = 0;
    scenarios: for (const scenario of options.scenarios) {
      const skip = notApplicable(id, scenario, options);
      if (skip) {
        result.scenarios[scenario] = { ...summarizeScenario([]), available: false, reason: skip };
        continue;
      }
      if (scenario === 'planned-move') {
        const why = await system.moveUnavailable();
        if (why) {
          result.scenarios[scenario] = { ...summarizeScenario([]), available: false, reason: why };
          log(`${result.label}: planned move not available: ${why}`);
          continue;
        }
      }
      if (SERVICE_SCENARIOS.has(scenario)) {
        services = await NodeServices.start(lab, SERVICE_CHECK, SERVICE_PROBE_INTERVAL_MS);
        ctx.services = services;
        log(`${result.label}: every node serves :${SERVICE_CHECK.port}; turning its health check on (interval ${SERVICE_CHECK.intervalSeconds} s, fall ${SERVICE_CHECK.fall}, rise ${SERVICE_CHECK.rise})`);
        const why = await system.setServiceCheck(SERVICE_CHECK);
        if (why) {
          result.scenarios[scenario] = { ...summarizeScenario([]), available: false, reason: why };
          log(`${result.label}: ${scenario} not available: ${why}`);
          services.stop();
          services = null;
          delete ctx.services;
          continue;
        }
      }
      const records: TrialRecord[] = [];
      for (let trial = 1; trial <= options.trials; trial += 1) {
        let record: TrialRecord;
        try {
          record = await runTrial(ctx, scenario, trial);
        } catch (error) {
          record = { ...emptyRecord(id, scenario, trial), error: (error as Error).message.split('\n')[0] ?? 'failed' };
        }
        records.push(record);
        result.trials.push(record);
        log(`${result.label} ${scenario} ${trial}/${options.trials}: ${describeTrial(record)}`);
        if (record.ok) {
          consecutiveFailures = 0;
          continue;
        }
        result.failures.push({ scenario, trial, error: record.error ?? '', logs: logTails(system) });
        if (!labIntact(lab)) {
          result.error = 'the lab was torn down from outside during the run (its namespaces or directory vanished)';
          result.scenarios[scenario] = summarizeScenario(records);
          break scenarios;
        }
        consecutiveFailures += 1;
        try {
          await recoverAll(ctx);
        } catch (error) {
          log(`${result.label}: recovery failed: ${(error as Error).message.split('\n')[0]}`);
        }
        if (consecutiveFailures >= 3) {
          result.error = `stopped after 3 failed trials in a row (last: ${record.error})`;
          result.scenarios[scenario] = summarizeScenario(records);
          break scenarios;
        }
      }
      result.scenarios[scenario] = summarizeScenario(records);
      if (services) {
        // The other scenarios run without the check, as they always have.
        await system.setServiceCheck(null);
        services.stop();
        services = null;
        delete ctx.services;
      }
    }
  } catch (error) {
    result.error = (error as Error).message;
    log(`${result.label}: ${result.error}`);
    if (system) result.failures.push({ scenario: 'setup', trial: 0, error: `setup: ${result.error}`, logs: logTails(system) });
  } finally {
    if (observer) result.overlaps = placeOverlaps(observer, result.trials, labStartedAt);
    probes?.stop();
    services?.stop();
    observer?.stop();
    await system?.stopAll().catch(() => undefined);
    if (system && options.keepLogs) saveLogs(system);
    await lab?.destroy();
  }
  return result;
}

async function versions(): Promise<Record<string, string>> {
  const first = async (command: string, args: string[]): Promise<string> => {
    const result = await run(command, args);
    if (result.code !== 0) return 'unknown';
    return (result.stdout || result.stderr).trim().split('\n')[0] ?? 'unknown';
  };
  const commit = await first('git', ['-C', REPO, 'rev-parse', 'HEAD']);
  const status = await run('git', ['-C', REPO, 'status', '--porcelain', '--untracked-files=no']);
  const dirty = status.code === 0 && status.stdout.trim() !== '';
  return {
    vipd: `${commit}${dirty ? ' (with uncommitted changes)' : ''}`,
    keepalived: await first('keepalived', ['--version']),
    etcd: await first('etcd', ['--version']),
    node: process.version,
    kernel: os.release(),
  };
}

function writeJson(document: unknown, options: Options): string[] {
  const paths = [join(RESULTS, 'latest.json'), ...(options.out ? [resolve(options.out)] : [])];
  for (const path of paths) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `${JSON.stringify(document, null, 2)}\n`);
  }
  return paths;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('run as root: the bench builds network namespaces');
  const started = new Date();
  log(
    `systems ${options.systems.join(', ')}; ${options.trials} trial(s) per scenario; idle ${options.idleSeconds} s; ` +
      `matched advert_int ${options.matchedAdvertInt} s (master down ${round(masterDownIntervalMs(options.matchedAdvertInt))} ms)`,
  );
  const meta = {
    startedAt: started.toISOString(),
    finishedAt: '',
    options,
    host: { cpus: os.cpus().length, kernel: os.release() },
    versions: await versions(),
    probeIntervalMs: PROBE_INTERVAL_MS,
    timings: TIMINGS,
    clientNeighbourLocktime: 0,
  };
  const results: SystemResult[] = [];
  const document = (): unknown => ({ meta, systems: results, comparisons: compare(results) });
  for (const id of options.systems) {
    results.push(await runSystem(id, options));
    // Written after every system, so a long run that is interrupted still leaves results.
    writeJson(document(), options);
  }
  meta.finishedAt = new Date().toISOString();
  const paths = writeJson(document(), options);
  process.stdout.write(`${formatTables(results, compare(results))}\n\n`);
  process.stdout.write(`raw trials and summaries: ${paths.join(', ')}\n`);
  if (results.some((result) => result.error)) process.exitCode = 1;
}

main().catch((error: Error) => {
  process.stderr.write(`bench: ${error.message}\n`);
  process.exit(2);
});
