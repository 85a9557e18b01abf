/** The benchmark's summaries and the table printed at the end. */
import type { Footprint, ProcessRole } from './footprint';
import { EMBEDDED_SCENARIOS, SCENARIO_IDS, SERVICE_SCENARIOS, SCENARIO_TITLES, type ScenarioId, type TrialRecord } from './scenarios';
import { ratio, summarize, type Summary } from './stats';
import type { SystemId } from './systems';

export type Metric = 'outageMs' | 'garpMs' | 'addressOverlapMs' | 'arpOverlapMs' | 'serviceMs';

/** `only`: the metric exists for these scenarios alone. */
export const METRICS: ReadonlyArray<{ key: Metric; title: string; only?: ReadonlySet<ScenarioId> }> = [
  { key: 'outageMs', title: 'Client-visible outage: longest gap between ICMP replies (5 ms probes)' },
  { key: 'garpMs', title: "Fault to the new holder's first gratuitous ARP at the client" },
  { key: 'addressOverlapMs', title: 'Address overlap: two nodes with the VIP configured (5 ms sampling)' },
  { key: 'arpOverlapMs', title: 'ARP overlap: two MACs answering one 5 ms ARP round' },
  { key: 'serviceMs', title: 'Service death to the first HTTP answer through the VIP from a healthy node (10 ms probes)', only: SERVICE_SCENARIOS },
];

export interface ScenarioSummary {
  available: boolean;
  reason?: string;
  trials: number;
  failed: number;
  /** Trials in which the VIP ended on a node other than the one holding it before the fault. */
  moved: number;
  figures: Record<Metric, Summary>;
}

/** Two nodes holding the VIP at once, anywhere in the run. */
export interface RunOverlap {
  nodes: string;
  /** ms after the lab was created. */
  atMs: number;
  durationMs: number;
  phase: string;
  inTrialWindow: boolean;
}

export interface SystemResult {
  id: SystemId;
  label: string;
  available: boolean;
  reason: string | null;
  error: string | null;
  settings: Record<string, string | number | boolean>;
  footprint: Footprint | null;
  scenarios: Partial<Record<ScenarioId, ScenarioSummary>>;
  trials: TrialRecord[];
  failures: Array<{ scenario: ScenarioId | 'setup'; trial: number; error: string; logs: Record<string, string> }>;
  /** Address-level overlaps over the whole run (the trial windows' ones are in the trials too). */
  overlaps: RunOverlap[];
}

export interface Comparison {
  vipd: SystemId;
  keepalived: SystemId;
  scenario: ScenarioId;
  metric: Metric;
  /**
   * vipd ÷ keepalived for each statistic, taken over the trial indices where both systems
   * succeeded (and produced the figure); null where there are none or keepalived's is 0.
   */
  median: number | null;
  p95: number | null;
  max: number | null;
  /** Trial indices both systems completed, and those only one (or neither) did. */
  paired: number;
  unpaired: number;
}

/** Each vipd system against the keepalived whose timing it is compared with. */
export const PAIRS: ReadonlyArray<[SystemId, SystemId]> = [
  ['vipd-fast', 'keepalived-matched'],
  ['vipd-default', 'keepalived-1'],
  ['vipd-embedded-fast', 'keepalived-matched'],
  ['vipd-embedded-default', 'keepalived-1'],
];

/** Why a scenario is not run on an embedded system in --quick. */
export const LEFT_OUT_OF_QUICK = 'left out of --quick';

/** The order of the columns. */
const COLUMNS: readonly SystemId[] = ['vipd-fast', 'vipd-embedded-fast', 'keepalived-matched', 'vipd-default', 'vipd-embedded-default', 'keepalived-1'];

export function summarizeScenario(records: TrialRecord[]): ScenarioSummary {
  const ok = records.filter((record) => record.ok);
  const figures = {} as Record<Metric, Summary>;
  for (const { key } of METRICS) figures[key] = summarize(ok.map((record) => record[key]));
  return {
    available: true,
    trials: records.length,
    failed: records.length - ok.length,
    moved: ok.filter((record) => record.finalHolder !== null && record.finalHolder !== record.oldHolder).length,
    figures,
  };
}

export function compare(results: SystemResult[]): Comparison[] {
  const byId = new Map(results.map((result) => [result.id, result]));
  const comparisons: Comparison[] = [];
  for (const [vipdId, keepalivedId] of PAIRS) {
    const vipd = byId.get(vipdId);
    const keepalived = byId.get(keepalivedId);
    if (!vipd || !keepalived) continue;
    for (const scenario of SCENARIO_IDS) {
      const a = vipd.scenarios[scenario];
      const b = keepalived.scenarios[scenario];
      if (!a?.available || !b?.available) continue;
      const trialsOf = (result: SystemResult): Map<number, TrialRecord> => new Map(result.trials.filter((trial) => trial.scenario === scenario).map((trial) => [trial.trial, trial]));
      const left = trialsOf(vipd);
      const right = trialsOf(keepalived);
      const indices = new Set([...left.keys(), ...right.keys()]);
      for (const { key, only } of METRICS) {
        if (only && !only.has(scenario)) continue;
        const xs: number[] = [];
        const ys: number[] = [];
        for (const index of indices) {
          const x = left.get(index);
          const y = right.get(index);
          const xv = x?.ok ? x[key] : null;
          const yv = y?.ok ? y[key] : null;
          if (typeof xv === 'number' && typeof yv === 'number') {
            xs.push(xv);
            ys.push(yv);
          }
        }
        const x = summarize(xs);
        const y = summarize(ys);
        comparisons.push({
          vipd: vipdId,
          keepalived: keepalivedId,
          scenario,
          metric: key,
          median: ratio(x.median, y.median),
          p95: ratio(x.p95, y.p95),
          max: ratio(x.max, y.max),
          paired: xs.length,
          unpaired: indices.size - xs.length,
        });
      }
    }
  }
  return comparisons;
}

function cell(result: SystemResult | undefined, scenario: ScenarioId, metric: Metric): string {
  if (!result) return 'not run';
  if (!result.available) return 'n/a';
  const summary = result.scenarios[scenario];
  if (!summary) return 'not run';
  if (!summary.available) return 'n/a';
  const figure = summary.figures[metric];
  const failed = summary.failed ? ` (${summary.failed} failed)` : '';
  if (figure.n === 0) return summary.failed ? `all ${summary.failed} failed` : '–';
  const show = (value: number | null): string => (value === null ? '–' : String(Math.round(value)));
  return `${show(figure.median)}/${show(figure.p95)}/${show(figure.max)}${failed}`;
}

function ratioCell(comparison: Comparison | undefined): string {
  if (!comparison) return '–';
  if (comparison.paired === 0) return comparison.unpaired ? 'n/a (unpaired)' : '–';
  const value = comparison.median === null ? '–' : comparison.median.toFixed(2);
  return comparison.unpaired ? `${value} (${comparison.paired} paired)` : value;
}

function pad(text: string, width: number): string {
  return text.length >= width ? `${text} ` : text + ' '.repeat(width - text.length);
}

function counts(values: Array<string | null>): string {
  const tally = new Map<string, number>();
  for (const value of values) tally.set(value ?? '?', (tally.get(value ?? '?') ?? 0) + 1);
  return [...tally].sort(([a], [b]) => a.localeCompare(b)).map(([name, n]) => `${name}×${n}`).join(' ');
}

export function formatTables(results: SystemResult[], comparisons: Comparison[]): string {
  const byId = new Map(results.map((result) => [result.id, result]));
  const lines: string[] = [];
  const header = (title: string): void => {
    lines.push('', title);
  };
  const labelOf = (id: SystemId): string => byId.get(id)?.label ?? id;
  const columns = COLUMNS.filter((id) => byId.has(id));
  const pairs = PAIRS.filter(([a, b]) => byId.has(a) && byId.has(b));
  const ran = (scenario: ScenarioId): boolean => results.some((result) => result.scenarios[scenario]?.available);
  const scenarios = SCENARIO_IDS.filter((scenario) => results.some((result) => result.scenarios[scenario]));
  const width = 24;
  const against = pairs.map(([a, b]) => `${labelOf(a)} against ${labelOf(b)}`).join(', ');
  for (const { key, title, only } of METRICS) {
    if (only && !scenarios.some((scenario) => only.has(scenario) && ran(scenario))) continue;
    header(`${title} — ms, median/p95/max over completed trials, (n failed) beside them; ratio = vipd/keepalived of the medians over the trials both completed (${against})`);
    lines.push([pad('scenario', 28), ...columns.map((id) => pad(labelOf(id), width)), ...pairs.map(([a]) => pad(`ratio ${labelOf(a).replace(/^vipd /, '')}`, width))].join(''));
    for (const scenario of scenarios) {
      if (!ran(scenario) || (only && !only.has(scenario))) continue;
      lines.push(
        [
          pad(SCENARIO_TITLES[scenario], 28),
          ...columns.map((id) => pad(cell(byId.get(id), scenario, key), width)),
          ...pairs.map(([a, b]) => pad(ratioCell(comparisons.find((entry) => entry.vipd === a && entry.keepalived === b && entry.scenario === scenario && entry.metric === key)), width)),
        ].join(''),
      );
    }
  }

  const embedded = results.filter((result) => result.trials.some((trial) => trial.etcdLeader !== null));
  if (embedded.length) {
    header('Embedded etcd: which node led etcd before the fault, moves of the VIP (changes of holder) and drops by the holder, per trial set');
    lines.push([pad('system', 36), pad('scenario', 30), pad('trials ok/all', 14), pad('leader was holder', 18), pad('moves (sum)', 12), pad('holder drops', 13), 'leader before the fault (per node)'].join(''));
    for (const result of embedded) {
      for (const scenario of SCENARIO_IDS) {
        const trials = result.trials.filter((trial) => trial.scenario === scenario);
        if (!trials.length || trials.every((trial) => trial.etcdLeader === null)) continue;
        const ok = trials.filter((trial) => trial.ok);
        lines.push(
          [
            pad(result.label, 36),
            pad(SCENARIO_TITLES[scenario], 30),
            pad(`${ok.length}/${trials.length}`, 14),
            pad(`${trials.filter((trial) => trial.etcdLeader !== null && trial.etcdLeader === trial.oldHolder).length}/${trials.length}`, 18),
            pad(String(ok.reduce((sum, trial) => sum + trial.moves, 0)), 12),
            pad(String(ok.reduce((sum, trial) => sum + trial.holderReleases, 0)), 13),
            counts(trials.map((trial) => trial.etcdLeader)),
          ].join(''),
        );
      }
    }
  }

  header('Footprint per node while idle (vipd: vipd run and its children, the embedded etcd member included; keepalived: parent + VRRP process)');
  lines.push([pad('', 36), ...columns.map((id) => pad(labelOf(id), width))].join(''));
  const row = (label: string, value: (footprint: Footprint) => string): void => {
    lines.push(
      [
        pad(label, 36),
        ...columns.map((id) => {
          const result = byId.get(id);
          if (!result) return pad('not run', width);
          if (!result.available || !result.footprint) return pad('n/a', width);
          return pad(value(result.footprint), width);
        }),
      ].join(''),
    );
  };
  const or = (value: number | null | undefined, digits = 0): string => (value === null || value === undefined ? '–' : value.toFixed(digits));
  const part = (f: Footprint, role: ProcessRole, field: 'rssKiBMean' | 'cpuPercentMean'): string => {
    const entry = f.byProcess?.[role];
    if (!entry) return '–';
    return field === 'rssKiBMean' ? (entry.rssKiBMean / 1024).toFixed(1) : entry.cpuPercentMean.toFixed(2);
  };
  row('RSS, mean (MiB)', (f) => or(f.rssKiBMean === null ? null : f.rssKiBMean / 1024, 1));
  row('  of which vipd run / etcd', (f) => `${part(f, 'vipd run', 'rssKiBMean')} / ${part(f, 'etcd', 'rssKiBMean')}`);
  row('CPU, mean (% of a core)', (f) => or(f.cpuPercentMean, 2));
  row('  of which vipd run / etcd', (f) => `${part(f, 'vipd run', 'cpuPercentMean')} / ${part(f, 'etcd', 'cpuPercentMean')}`);
  row('CPU of the holder (% of a core)', (f) => or(f.holderCpuPercent, 2));
  row('etcd handled RPCs/s (all members)', (f) => (f.etcd ? or(f.etcd.handledPerSecond, 1) : 'does not use etcd'));
  row('etcd messages/s (all members)', (f) => (f.etcd ? or(f.etcd.messagesPerSecond, 1) : 'does not use etcd'));
  row('raft entries committed/s', (f) => (f.etcd ? or(f.etcd.raftEntriesPerSecond, 1) : 'does not use etcd'));
  row('moves while idle (must be 0)', (f) => String(f.movesWhileIdle));
  row('start to VIP reachable (ms)', (f) => or(f.startToReachableMs));
  row('idle window (s)', (f) => or(f.windowMs / 1000, 0));

  lines.push(
    '',
    'Notes: a keepalived master killed whole or frozen keeps the VIP in its kernel, which still answers ping and ARP;',
    "its outage stays small there and its overlap shows two nodes answering. Planned move is timed from the command",
    "(vipd: starting `vipd move`, keepalived: SIGTERM to the master). See bench/README.md.",
  );
  for (const result of results) {
    const outside = result.overlaps.filter((overlap) => !overlap.inTrialWindow);
    if (!outside.length) continue;
    const shown = outside.slice(0, 5).map((overlap) => `${overlap.nodes} ${overlap.durationMs} ms (${overlap.phase})`).join('; ');
    lines.push(`${result.label}: ${outside.length} overlap(s) outside the trial windows: ${shown}`);
  }
  const missing = results.filter((result) => !result.available || result.error);
  for (const result of missing) lines.push('', `${result.label}: ${result.available ? `error: ${result.error}` : `not available: ${result.reason}`}`);
  for (const result of results) {
    for (const [scenario, summary] of Object.entries(result.scenarios)) {
      if (summary && !summary.available && !EMBEDDED_SCENARIOS.has(scenario as ScenarioId) && summary.reason !== LEFT_OUT_OF_QUICK) lines.push(`${result.label}, ${SCENARIO_TITLES[scenario as ScenarioId]}: not available: ${summary.reason}`);
    }
  }
  return lines.join('\n');
}
