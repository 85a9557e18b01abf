import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { bashCompletion, zshCompletion } from '../../src/cli/completion';
import { buildProgram } from '../../src/main';

/** What bash offers after `words` (the last word is the one being completed). */
function complete(script: string, words: string[]): string[] {
  const quoted = words.map((word) => `'${word}'`).join(' ');
  const output = execFileSync('bash', ['--norc', '--noprofile', '-c', `${script}\nCOMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _vipd; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
  return output.split('\n').filter(Boolean);
}

test('bash completion offers commands, subcommands and flags read from the program itself', () => {
  const script = bashCompletion(buildProgram());
  assert.deepEqual(complete(script, ['vipd', 'to']), ['token']);
  assert.deepEqual(complete(script, ['vipd', 'token', 'c']), ['create']);
  assert.deepEqual(complete(script, ['vipd', 'status', '--o']), ['--output']);
  assert.deepEqual(complete(script, ['vipd', 'dhcp', '']), ['reservation', '--help']);
  assert.ok(complete(script, ['vipd', '']).includes('completion'));
});

test('zsh completion loads the same function through bashcompinit', () => {
  const script = zshCompletion(buildProgram());
  assert.match(script, /^#compdef vipd\n/);
  assert.match(script, /bashcompinit/);
  assert.match(script, /complete -F _vipd vipd/);
});
