import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sweepStaleHookDirectories } from '../../src/holding/udhcpc-hook';

const MODULE = join(__dirname, '..', '..', 'src', 'holding', 'udhcpc-hook.js');

/** Runs a process that installs the hook the way the agent does, prints its path and exits. */
function agentLikeProcess(parent: string): string {
  const script = `const { installUdhcpcHook } = require(${JSON.stringify(MODULE)}); console.log(installUdhcpcHook('#!/bin/sh\\n'));`;
  return execFileSync(process.execPath, ['-e', script], { env: { ...process.env, RUNTIME_DIRECTORY: parent }, encoding: 'utf8' }).trim();
}

test('the udhcpc hook directory is gone after the process exits, and restarts leave none behind', (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'vipd-hook-test-'));
  t.after(() => rmSync(parent, { recursive: true, force: true }));
  const first = agentLikeProcess(parent);
  assert.ok(first.startsWith(join(parent, 'vipd-dhcp-')), first);
  assert.equal(existsSync(first), false, 'the hook script outlived its process');
  agentLikeProcess(parent);
  assert.deepEqual(readdirSync(parent), []);
});

test("a killed agent's hook directory is swept by the next one; a live agent's is kept", (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'vipd-hook-test-'));
  t.after(() => rmSync(parent, { recursive: true, force: true }));
  // A pid that cannot be running: above the kernel's pid_max limit.
  mkdirSync(join(parent, 'vipd-dhcp-4194305'));
  mkdirSync(join(parent, 'vipd-dhcp-1'));
  mkdirSync(join(parent, 'unrelated'));
  assert.deepEqual(sweepStaleHookDirectories(parent), ['vipd-dhcp-4194305']);
  assert.deepEqual(readdirSync(parent).sort(), ['unrelated', 'vipd-dhcp-1']);
});
