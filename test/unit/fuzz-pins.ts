/**
 * Every fuzz finding fails its test unless its kind is pinned here by a named `todo` test
 * that says why it is still open and checks the fix (it passes once the bug is fixed).
 */
import { test } from 'node:test';
import { describeFindings, type FuzzSummary, type FuzzTarget } from '../../lab/chaos/fuzz/common';

export interface OpenFinding {
  kind: string;
  /** Why it is still open: shown as the todo's reason. */
  reason: string;
  /** Passes once the finding is fixed. */
  check: () => void | Promise<void>;
}

/** Registers one todo test per open finding; returns the kinds they pin. */
export function pinOpenFindings(target: FuzzTarget, open: readonly OpenFinding[]): ReadonlySet<string> {
  for (const finding of open) test(`open ${target} fuzz finding ${finding.kind}`, { todo: finding.reason }, finding.check);
  return new Set(open.map((finding) => finding.kind));
}

/** The findings no todo test pins, described with an example of each ('' when none). */
export function unpinnedFindings(summary: FuzzSummary, pinned: ReadonlySet<string>): string {
  return describeFindings(summary.findings.filter((finding) => !pinned.has(finding.kind)));
}
