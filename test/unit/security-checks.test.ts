/**
 * Security checks that need no lab: files others could rewrite are refused, and the API
 * refuses requests without a token, with another cluster's token, or with a read token on a
 * mutation. The lab versions are in test/lab/security.test.ts.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { loadConfig } from '../../src/config/config';
import { InputError } from '../../src/config/schema-check';
import { ClusterKeys } from '../../src/store/keys';
import { securityKeys } from '../../src/store/keys';
import { TokenStore } from '../../src/security/tokens';
import { createApiWorld, type ApiWorld } from './fakes';

const BASE = {
  cluster: 'lab',
  node: { name: 'node-1', interface: 'mgmt-br' },
  vip: { mode: 'static', address: '192.0.2.10' },
  etcd: { endpoints: ['https://192.0.2.2:2379'] },
};

describe('files another user could rewrite are refused', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vipd-perm-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function file(name: string, text: string, mode: number): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    chmodSync(path, mode);
    return path;
  }

  function refusal(path: string): InputError {
    try {
      loadConfig(path);
    } catch (error) {
      assert.ok(error instanceof InputError, String(error));
      return error;
    }
    assert.fail(`${path} was accepted`);
  }

  test('a config file writable by its group or by everyone, naming --config, the path and the mode', () => {
    for (const [mode, who] of [[0o664, 'its group'], [0o646, 'every user'], [0o666, 'its group and every user'], [0o777, 'its group and every user']] as const) {
      const path = file(`config-${mode.toString(8)}.yaml`, toYaml(BASE), mode);
      const error = refusal(path);
      assert.equal(error.field, '--config');
      assert.equal(error.message, `--config: ${path} is writable by ${who} (mode 0${mode.toString(8)}); run: chmod go-w ${path}`);
    }
  });

  test('private config files load: 0600, 0640, 0644, 0400', () => {
    for (const mode of [0o600, 0o640, 0o644, 0o400]) {
      assert.equal(loadConfig(file(`ok-${mode.toString(8)}.yaml`, toYaml(BASE), mode)).cluster, 'lab');
    }
  });

  test('etcd.tls files: writable by others, missing, or not a file, each naming its field', () => {
    const tls = join(dir, 'tls');
    mkdirSync(tls, { recursive: true });
    const ca = file('tls/ca.pem', 'ca', 0o644);
    const cert = file('tls/client.pem', 'cert', 0o644);
    const key = file('tls/client-key.pem', 'key', 0o600);
    const config = (files: Record<string, string>, name: string) => file(name, toYaml({ ...BASE, etcd: { ...BASE.etcd, tls: files } }), 0o600);

    assert.equal(loadConfig(config({ ca, cert, key }, 'tls-ok.yaml')).etcd.tls?.key, key);

    chmodSync(key, 0o660);
    let error = refusal(config({ ca, cert, key }, 'tls-key.yaml'));
    assert.equal(error.field, 'etcd.tls.key');
    assert.match(error.message, new RegExp(`^etcd\\.tls\\.key: ${key.replace(/[.]/g, '\\.')} is writable by its group \\(mode 0660\\)`));
    chmodSync(key, 0o600);

    chmodSync(ca, 0o666);
    error = refusal(config({ ca }, 'tls-ca.yaml'));
    assert.equal(error.field, 'etcd.tls.ca');
    chmodSync(ca, 0o644);

    chmodSync(cert, 0o646);
    assert.equal(refusal(config({ ca, cert, key }, 'tls-cert.yaml')).field, 'etcd.tls.cert');
    chmodSync(cert, 0o644);

    error = refusal(config({ ca: join(tls, 'missing.pem') }, 'tls-missing.yaml'));
    assert.equal(error.field, 'etcd.tls.ca');
    assert.match(error.message, /cannot read .*missing\.pem/);

    error = refusal(config({ ca: tls }, 'tls-dir.yaml'));
    assert.equal(error.field, 'etcd.tls.ca');
    assert.match(error.message, /is not a regular file/);
  });
});

describe('API auth: no token, another cluster\'s token, a read token on a mutation', () => {
  let world: ApiWorld;
  let otherClusterAdmin: string;
  before(async () => {
    world = await createApiWorld();
    // Another cluster on the same etcd: its tokens live under /vipd/other/, never under ours.
    otherClusterAdmin = (await new TokenStore(world.kv, securityKeys(new ClusterKeys('other'))).create({ role: 'admin' })).token;
  });
  after(async () => {
    await world.app.close();
    world.certificates.stop();
  });

  const READ_ENDPOINTS = ['/v1/management-address', '/v1/nodes', '/v1/about', '/v1/events'];
  const MUTATIONS = [
    { method: 'POST' as const, url: '/v1/management-address/move', payload: { to: 'node-2' } },
    { method: 'PUT' as const, url: '/v1/settings/ssl-certificates', payload: { certificate: 'x', privateKey: 'y' } },
  ];

  test('every non-public endpoint answers 401 without a token and with another cluster\'s admin token', async () => {
    for (const authorization of [undefined, `Bearer ${otherClusterAdmin}`]) {
      const headers = authorization ? { authorization } : {};
      for (const url of READ_ENDPOINTS) {
        const response = await world.app.inject({ method: 'GET', url, headers });
        assert.equal(response.statusCode, 401, `${url} with ${authorization ? 'another cluster\'s token' : 'no token'}`);
      }
      for (const mutation of MUTATIONS) {
        const response = await world.app.inject({ ...mutation, headers: { ...headers, 'content-type': 'application/json' } });
        assert.equal(response.statusCode, 401, mutation.url);
      }
    }
    assert.deepEqual(world.backend.moves, []);
  });

  test('a read token is refused (403) on both mutating endpoints and changes nothing', async () => {
    const before = JSON.stringify([...world.kv.data.entries()]);
    for (const mutation of MUTATIONS) {
      const response = await world.app.inject({ ...mutation, headers: { authorization: `Bearer ${world.readToken}`, 'content-type': 'application/json' } });
      assert.equal(response.statusCode, 403, mutation.url);
    }
    assert.deepEqual(world.backend.moves, []);
    assert.equal(JSON.stringify([...world.kv.data.entries()]), before);
  });
});
