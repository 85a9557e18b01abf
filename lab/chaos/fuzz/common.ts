/** What every fuzz target reports, and how a failing case is named so it can be replayed. */

export type FuzzTarget = 'config' | 'cli' | 'api';

export interface FuzzFailure {
  target: FuzzTarget;
  seed: number;
  /** The case number: with the seed, it regenerates the same input. */
  index: number;
  input: string;
  problem: string;
}

/**
 * A weakness that is not a crash (e.g. an absurd value accepted, raw control characters in a
 * message). Every one fails the fuzz tests unless a named `todo` test pins its kind.
 */
export interface FuzzFinding {
  target: FuzzTarget;
  seed: number;
  index: number;
  /** Groups findings of one cause, e.g. "timer-overflow". */
  kind: string;
  input: string;
  detail: string;
}

export interface FuzzSummary {
  target: FuzzTarget;
  seed: number;
  cases: number;
  accepted: number;
  rejected: number;
  failures: FuzzFailure[];
  findings: FuzzFinding[];
  /**
   * Observations that say nothing about correctness: a slow case (speed is the benchmark's
   * business; a hang is a failure) or inputs the HTTP client would not send. Printed, never failing.
   */
  notes: FuzzFinding[];
  ms: number;
}

export interface FuzzRunOptions {
  seed: number;
  cases: number;
  /** First case number (to replay one case: first = N, cases = 1). */
  first?: number;
  /** Called after each case, e.g. for a watchdog. */
  progress?: (index: number) => void;
}

export function emptySummary(target: FuzzTarget, seed: number): FuzzSummary {
  return { target, seed, cases: 0, accepted: 0, rejected: 0, failures: [], findings: [], notes: [], ms: 0 };
}

/** One line per failure, each with the command that replays it. */
export function describeFailures(summary: FuzzSummary, limit = 10): string {
  const lines = summary.failures.slice(0, limit).map(
    (failure) =>
      `  [${failure.target} #${failure.index}] ${failure.problem}\n    input: ${failure.input}\n    replay: npm run fuzz -- --target ${failure.target} --seed ${failure.seed} --case ${failure.index}`,
  );
  if (summary.failures.length > limit) lines.push(`  … and ${summary.failures.length - limit} more`);
  return lines.join('\n');
}

/** Findings grouped by kind, with one example each. */
export function describeFindings(findings: FuzzFinding[]): string {
  const byKind = new Map<string, FuzzFinding[]>();
  for (const finding of findings) byKind.set(finding.kind, [...(byKind.get(finding.kind) ?? []), finding]);
  return [...byKind.entries()]
    .map(([kind, list]) => `  ${kind}: ${list.length} case(s), e.g. [${list[0]!.target} #${list[0]!.index}] ${list[0]!.detail}\n    input: ${list[0]!.input}`)
    .join('\n');
}
