/**
 * `vipd doctor` results: one verdict per check, the report object behind -o json|yaml, the
 * table a person reads, and the exit code.
 */

export type Verdict = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  name: string;
  verdict: Verdict;
  /** One line: what was seen (or, for skip, why the check did not run). */
  detail: string;
  /** For warn and fail: what to do about it. */
  hint?: string;
}

export interface DoctorReport {
  apiVersion: 'vipd.io/v1';
  kind: 'DoctorReport';
  metadata: { cluster: string; node: string; time: string };
  /** The worst verdict of any check (skip counts as ok). */
  verdict: 'ok' | 'warn' | 'fail';
  summary: Record<Verdict, number>;
  checks: CheckResult[];
}

/** Every check passed, warned or was skipped. */
export const EXIT_DOCTOR_OK = 0;
/** At least one check failed. Distinct from 1 (etcd unreachable) and 2 (bad config). */
export const EXIT_CHECKS_FAILED = 3;

export function check(name: string, verdict: Verdict, detail: string, hint?: string): CheckResult {
  return hint === undefined ? { name, verdict, detail } : { name, verdict, detail, hint };
}

export function skip(name: string, reason: string): CheckResult {
  return { name, verdict: 'skip', detail: reason };
}

const RANK: Record<Verdict, number> = { skip: 0, ok: 0, warn: 1, fail: 2 };

/** The worse of two verdicts: fail over warn over ok; skip never raises the level. */
export function worse(a: Verdict, b: Verdict): Verdict {
  if (RANK[b] > RANK[a]) return b;
  if (RANK[a] > RANK[b]) return a;
  return a === 'ok' || b === 'ok' ? 'ok' : a;
}

export function overallVerdict(results: readonly CheckResult[]): 'ok' | 'warn' | 'fail' {
  const level = results.reduce((acc, result) => Math.max(acc, RANK[result.verdict]), 0);
  return level === 2 ? 'fail' : level === 1 ? 'warn' : 'ok';
}

export function buildReport(cluster: string, node: string, results: CheckResult[], now = new Date()): DoctorReport {
  const summary: Record<Verdict, number> = { ok: 0, warn: 0, fail: 0, skip: 0 };
  for (const result of results) summary[result.verdict] += 1;
  return {
    apiVersion: 'vipd.io/v1',
    kind: 'DoctorReport',
    metadata: { cluster, node, time: now.toISOString() },
    verdict: overallVerdict(results),
    summary,
    checks: results,
  };
}

/** 3 when any check failed, else 0. etcd being unreachable (1) is decided by the caller. */
export function doctorExitCode(report: DoctorReport): number {
  return report.summary.fail > 0 ? EXIT_CHECKS_FAILED : EXIT_DOCTOR_OK;
}

// Upper case only where a person must act, so problems stand out in a column of "ok".
const SHOWN: Record<Verdict, string> = { ok: 'ok', skip: 'skip', warn: 'WARN', fail: 'FAIL' };

/** One row per check; fix hints indented under their row; a summary line last. */
export function formatDoctorTable(report: DoctorReport): string {
  const nameWidth = Math.max('CHECK'.length, ...report.checks.map((result) => result.name.length));
  const verdictWidth = 'VERDICT'.length;
  const indent = ' '.repeat(nameWidth + verdictWidth + 4);
  const lines = [`${'CHECK'.padEnd(nameWidth)}  ${'VERDICT'.padEnd(verdictWidth)}  DETAIL`];
  for (const result of report.checks) {
    lines.push(`${result.name.padEnd(nameWidth)}  ${SHOWN[result.verdict].padEnd(verdictWidth)}  ${result.detail}`);
    if (result.hint && (result.verdict === 'fail' || result.verdict === 'warn')) lines.push(`${indent}fix: ${result.hint}`);
  }
  const { ok, warn, fail, skip: skipped } = report.summary;
  const headline = fail > 0 ? 'FAIL' : warn > 0 ? 'WARN' : 'OK';
  lines.push('', `${headline}: ${ok} ok, ${warn} warn, ${fail} fail, ${skipped} skipped (node ${report.metadata.node}, cluster ${report.metadata.cluster})`);
  return `${lines.join('\n')}\n`;
}
