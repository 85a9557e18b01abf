import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { DEFAULT_CONFIG_PATH, findConfigPath, requireConfigPath, type ConfigLookup } from '../../src/config/config-path';
import { InputError } from '../../src/config/schema-check';
import { chooseSource } from '../../src/cli/status';

const execFileAsync = promisify(execFile);
const CLI = join(__dirname, '..', '..', 'src', 'main.js');

function lookup(env: Record<string, string>, defaultExists: boolean): ConfigLookup {
  return { env, exists: (path) => defaultExists && path === DEFAULT_CONFIG_PATH };
}

test('the flag wins over $VIPD_CONFIG and the default file', () => {
  assert.equal(findConfigPath('/srv/a.yaml', lookup({ VIPD_CONFIG: '/srv/b.yaml' }, true)), '/srv/a.yaml');
});

test('$VIPD_CONFIG is read when the flag is absent, before the default file', () => {
  assert.equal(findConfigPath(undefined, lookup({ VIPD_CONFIG: '/srv/b.yaml' }, true)), '/srv/b.yaml');
});

test('/etc/vipd/config.yaml is used when it exists and nothing else is given', () => {
  assert.equal(findConfigPath(undefined, lookup({}, true)), DEFAULT_CONFIG_PATH);
  assert.equal(findConfigPath(undefined, lookup({ VIPD_CONFIG: '' }, true)), DEFAULT_CONFIG_PATH);
});

test('with none of the three, the error names all three places', () => {
  assert.throws(
    () => requireConfigPath(undefined, lookup({}, false)),
    (error: unknown) => error instanceof InputError && error.field === '--config' && /--config FILE/.test(error.message) && /VIPD_CONFIG/.test(error.message) && error.message.includes(DEFAULT_CONFIG_PATH),
  );
});

test('status and move: --server talks to the API, else the config found as above, never both', () => {
  assert.equal(chooseSource({ server: 'https://192.0.2.10' }, lookup({}, false)), null);
  assert.equal(chooseSource({}, lookup({ VIPD_CONFIG: '/srv/b.yaml' }, false)), '/srv/b.yaml');
  assert.equal(chooseSource({}, lookup({}, true)), DEFAULT_CONFIG_PATH);
  assert.throws(() => chooseSource({ config: '/a', server: 'https://192.0.2.10' }, lookup({}, false)), /not both/);
  assert.throws(() => chooseSource({}, lookup({}, false)), (error: unknown) => error instanceof InputError && /--server/.test(error.message) && /VIPD_CONFIG/.test(error.message));
});

test('every command that reads a config takes it from $VIPD_CONFIG (the binary, exit 2 naming the file)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vipd-config-path-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'missing.yaml');
  for (const args of [['status'], ['doctor'], ['run'], ['token', 'list'], ['ca'], ['dhcp', 'reservation'], ['node', 'remove', 'node-9'], ['move', '--to', 'node-2']]) {
    const outcome = await execFileAsync(process.execPath, [CLI, ...args], { env: { ...process.env, VIPD_CONFIG: missing }, timeout: 20_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );
    assert.equal(outcome.code, 2, `${args.join(' ')}: ${outcome.stderr}`);
    assert.ok(outcome.stderr.includes(missing), `${args.join(' ')} did not read $VIPD_CONFIG: ${outcome.stderr}`);
  }
});

test('without a flag, $VIPD_CONFIG or /etc/vipd/config.yaml, the binary names all three', { skip: existsSync(DEFAULT_CONFIG_PATH) ? `${DEFAULT_CONFIG_PATH} exists on this machine` : false }, async () => {
  const env = { ...process.env };
  delete env.VIPD_CONFIG;
  const outcome = await execFileAsync(process.execPath, [CLI, 'doctor'], { env, timeout: 20_000 }).then(
    () => ({ code: 0, stderr: '' }),
    (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
  );
  assert.equal(outcome.code, 2);
  assert.match(outcome.stderr, /^vipd: --config: no config file: give --config FILE, set VIPD_CONFIG, or create \/etc\/vipd\/config\.yaml/);
});
