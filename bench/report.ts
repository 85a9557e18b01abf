/** The benchmark's summaries and the table printed at the end. */
import type { Footprint } from './footprint';
import { SCENARIO_IDS, SCENARIO_TITLES, type ScenarioId, type TrialRecord } from './scenarios';
import { ratio, summarize, type Summary } from './stats';
import type { SystemId } from './systems';

export type Metric = 'outageMs' | 'garpMs' | 'addressOverlapMs' | 'arpOverlapMs';

export const METRICS: ReadonlyArray<{ key: Metric; title: string }> = [
  { key: 'outageMs', title: 'Client-visible outage: longest gap between ICMP replies (5 ms probes)' },
  { key: 'garpMs', title: "Fault to the new holder's first gratuitous ARP at the client" },
  { key: 'addressOverlapMs', title: 'Address overlap: two nodes with the VIP configured (5 ms sampling)' },
  { key: 'arpOverlapMs', title: 'ARP overlap: two MACs answering one 5 ms ARP round' },
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
  /** vipd ÷ keepalived for each statistic; null where either is missing or keepalived's is 0. */
  median: number | null;
  p95: number | null;
  max: number | null;
}

export const PAIRS: ReadonlyArray<[SystemId, SystemId]> = [
  ['vipd-fast', 'keepalived-matched'],
  ['vipd-default', 'keepalived-1'],
];

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
      for (const { key } of METRICS) {
        const x = a.figures[key];
        const y = b.figures[key];
        comparisons.push({
          vipd: vipdId,
          keepalived: keepalivedId,
          scenario,
          metric: key,
          median: ratio(x.median, y.median),
          p95: ratio(x.p95, y.p95),
          max: ratio(x.max, y.max),
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
  if (figure.n === 0) return summary.failed ? `failed ${summary.failed}` : '–';
  const show = (value: number | null): string => (value === null ? '–' : String(Math.round(value)));
  const failed = summary.failed ? ` !${summary.failed}` : '';
  return `${show(figure.median)}/${show(figure.p95)}/${show(figure.max)}${failed}`;
}

function pad(text: string, width: number): string {
  return text.length >= width ? `${text} ` : text + ' '.repeat(width - text.length);
}

export function formatTables(results: SystemResult[], comparisons: Comparison[]): string {
  const byId = new Map(results.map((result) => [result.id, result]));
  const lines: string[] = [];
  const header = (title: string): void => {
    lines.push('', title);
  };
  const widths = [26, 18, 20, 8, 18, 20, 8];
  const labelOf = (id: SystemId): string => byId.get(id)?.label ?? id;
  for (const { key, title } of METRICS) {
    header(`${title} — ms, median/p95/max (!n = failed trials); ratio = vipd/keepalived of the medians`);
    const [fast, matched] = PAIRS[0]!;
    const [standard, one] = PAIRS[1]!;
    lines.push(
      [
        pad('scenario', widths[0]!),
        pad(labelOf(fast), widths[1]!),
        pad(labelOf(matched), widths[2]!),
        pad('ratio', widths[3]!),
        pad(labelOf(standard), widths[4]!),
        pad(labelOf(one), widths[5]!),
        'ratio',
      ].join(''),
    );
    for (const scenario of SCENARIO_IDS) {
      const r = (vipd: SystemId): string => {
        const found = comparisons.find((entry) => entry.vipd === vipd && entry.scenario === scenario && entry.metric === key);
        return found?.median === null || found === undefined ? '–' : found.median.toFixed(2);
      };
      lines.push(
        [
          pad(SCENARIO_TITLES[scenario], widths[0]!),
          pad(cell(byId.get(fast), scenario, key), widths[1]!),
          pad(cell(byId.get(matched), scenario, key), widths[2]!),
          pad(r(fast), widths[3]!),
          pad(cell(byId.get(standard), scenario, key), widths[4]!),
          pad(cell(byId.get(one), scenario, key), widths[5]!),
          r(standard),
        ].join(''),
      );
    }
  }

  header('Footprint per agent while idle (vipd: vipd run and its helpers; keepalived: parent + VRRP process)');
  const order: SystemId[] = ['vipd-fast', 'keepalived-matched', 'vipd-default', 'keepalived-1'];
  lines.push([pad('', 36), ...order.map((id) => pad(labelOf(id), 20))].join(''));
  const row = (label: string, value: (footprint: Footprint) => string): void => {
    lines.push(
      [
        pad(label, 36),
        ...order.map((id) => {
          const result = byId.get(id);
          if (!result) return pad('not run', 20);
          if (!result.available || !result.footprint) return pad('n/a', 20);
          return pad(value(result.footprint), 20);
        }),
      ].join(''),
    );
  };
  const or = (value: number | null | undefined, digits = 0): string => (value === null || value === undefined ? '–' : value.toFixed(digits));
  row('RSS, mean (MiB)', (f) => or(f.rssKiBMean === null ? null : f.rssKiBMean / 1024, 1));
  row('CPU, mean (% of a core)', (f) => or(f.cpuPercentMean, 2));
  row('CPU of the holder (% of a core)', (f) => or(f.holderCpuPercent, 2));
  row('etcd handled RPCs/s (all agents)', (f) => (f.etcd ? or(f.etcd.handledPerSecond, 1) : 'does not use etcd'));
  row('etcd messages/s (all agents)', (f) => (f.etcd ? or(f.etcd.messagesPerSecond, 1) : 'does not use etcd'));
  row('moves while idle (must be 0)', (f) => String(f.movesWhileIdle));
  row('start to VIP reachable (ms)', (f) => or(f.startToReachableMs));
  row('idle window (s)', (f) => or(f.windowMs / 1000, 0));

  lines.push(
    '',
    'Notes: a killed or frozen keepalived master keeps the VIP in its kernel, which still answers ping and ARP;',
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
      if (summary && !summary.available) lines.push(`${result.label}, ${SCENARIO_TITLES[scenario as ScenarioId]}: not available: ${summary.reason}`);
    }
  }
  return lines.join('\n');
}
