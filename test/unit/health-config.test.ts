import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/config';
import { rejects } from './config-rejects';

const valid = {
  cluster: 'demo',
  node: { name: 'node-1', interface: 'mgmt-br' },
  vip: { mode: 'static', address: '192.0.2.10' },
  etcd: { endpoints: ['http://192.0.2.11:2379'] },
};

function withChecks(...checks: unknown[]): unknown {
  return { ...valid, health: { checks } };
}

test('no health section: no checks, the node is always healthy', () => {
  assert.deepEqual(resolveConfig(valid).health, { checks: [] });
  assert.deepEqual(resolveConfig({ ...valid, health: {} }).health, { checks: [] });
});

test('the issue example is accepted; defaults: interval 1s, timeout = interval, fall 3, rise 2, status 200-399', () => {
  const { checks } = resolveConfig(
    withChecks(
      { name: 'api', http: 'https://127.0.0.1:6443/readyz', interval: '1s', timeout: '500ms', fall: 3, rise: 2 },
      { name: 'ui', http: 'http://127.0.0.1:8080/' },
      { name: 'ingress', tcp: '[::1]:443', interval: '2s' },
      { name: 'rke2', command: ['/usr/bin/systemctl', 'is-active', 'rke2-server'] },
    ),
  ).health;
  assert.equal(checks[0]!.timeoutMs, 500);
  assert.deepEqual(checks[1], {
    name: 'ui',
    field: 'health.checks[1]',
    probe: { kind: 'http', url: 'http://127.0.0.1:8080/', expectedStatus: [[200, 399]], ca: null, insecureSkipVerify: false, headers: {} },
    intervalMs: 1000,
    timeoutMs: 1000,
    fall: 3,
    rise: 2,
  });
  assert.deepEqual(checks[2]!.probe, { kind: 'tcp', host: '::1', port: 443 });
  assert.equal(checks[2]!.timeoutMs, 2000);
  assert.deepEqual(checks[3]!.probe, { kind: 'command', argv: ['/usr/bin/systemctl', 'is-active', 'rke2-server'] });
});

test('http options: expected status codes and ranges, CA or insecureSkipVerify, headers', () => {
  const [check] = resolveConfig(
    withChecks({ name: 'api', http: 'https://127.0.0.1:6443/readyz', expectedStatus: [200, '300-302'], insecureSkipVerify: true, headers: { Authorization: 'Bearer x' } }),
  ).health.checks;
  assert.deepEqual(check!.probe, {
    kind: 'http',
    url: 'https://127.0.0.1:6443/readyz',
    expectedStatus: [
      [200, 200],
      [300, 302],
    ],
    ca: null,
    insecureSkipVerify: true,
    headers: { Authorization: 'Bearer x' },
  });
});

test('bad check config names the field', () => {
  rejects(withChecks({ name: 'API', tcp: '127.0.0.1:1' }), 'health.checks[0].name', /lowercase/);
  rejects(withChecks({ name: 'a', tcp: '127.0.0.1:1' }, { name: 'a', tcp: '127.0.0.1:2' }), 'health.checks[1].name', /unique/);
  rejects(withChecks({ name: 'a' }), 'health.checks[0]', /exactly one of http, tcp or command/);
  rejects(withChecks({ name: 'a', tcp: '127.0.0.1:1', command: ['/bin/true'] }), 'health.checks[0]', /got tcp and command/);
  rejects(withChecks({ name: 'a', http: 'ftp://x/' }), 'health.checks[0].http', /http:\/\/ or https:\/\/ URL/);
  rejects(withChecks({ name: 'a', http: 'https://[::1/readyz' }), 'health.checks[0].http', /not a valid URL/);
  rejects(withChecks({ name: 'a', http: 'https://u:p@127.0.0.1/' }), 'health.checks[0].http', /credentials/);
  rejects(withChecks({ name: 'a', tcp: '127.0.0.1' }), 'health.checks[0].tcp', /host:port/);
  rejects(withChecks({ name: 'a', tcp: '127.0.0.1:70000' }), 'health.checks[0].tcp', /between 1 and 65535/);
  rejects(withChecks({ name: 'a', tcp: '[zz]:1' }), 'health.checks[0].tcp', /host:port/);
  rejects(withChecks({ name: 'a', command: [] }), 'health.checks[0].command', /argv list/);
  rejects(withChecks({ name: 'a', command: ['true'] }), 'health.checks[0].command[0]', /absolute path/);
  rejects(withChecks({ name: 'a', tcp: '127.0.0.1:1', interval: 'often' }), 'health.checks[0].interval', /duration/);
  rejects(withChecks({ name: 'a', tcp: '127.0.0.1:1', interval: '10ms' }), 'health.checks[0].interval', /from 100ms to 5m/);
  rejects(withChecks({ name: 'a', tcp: '127.0.0.1:1', timeout: '2s' }), 'health.checks[0].timeout', /must not exceed the interval/);
  rejects(withChecks({ name: 'a', tcp: '127.0.0.1:1', timeout: '1ms' }), 'health.checks[0].timeout', /at least 10ms/);
  rejects(withChecks({ name: 'a', tcp: '127.0.0.1:1', fall: 0 }), 'health.checks[0].fall', /1 to 100/);
  rejects(withChecks({ name: 'a', tcp: '127.0.0.1:1', rise: 1.5 }), 'health.checks[0].rise', /1 to 100/);
  rejects(withChecks({ name: 'a', tcp: '127.0.0.1:1', expectedStatus: [200] }), 'health.checks[0].expectedStatus', /http checks only/);
  rejects(withChecks({ name: 'a', http: 'http://127.0.0.1/', insecureSkipVerify: true }), 'health.checks[0].insecureSkipVerify', /https/);
  rejects(withChecks({ name: 'a', http: 'http://127.0.0.1/', ca: '/etc/ca.pem' }), 'health.checks[0].ca', /https/);
  rejects(withChecks({ name: 'a', http: 'https://127.0.0.1/', ca: '/etc/ca.pem', insecureSkipVerify: true }), 'health.checks[0].insecureSkipVerify', /pick one/);
  rejects(withChecks({ name: 'a', http: 'http://127.0.0.1/', expectedStatus: ['399-200'] }), 'health.checks[0].expectedStatus[0]', /empty range/);
  rejects(withChecks({ name: 'a', http: 'http://127.0.0.1/', expectedStatus: [700] }), 'health.checks[0].expectedStatus[0]', /status code/);
  rejects(withChecks({ name: 'a', http: 'http://127.0.0.1/', headers: { 'X-A': 'a\nb' } }), 'health.checks[0].headers.X-A', /line breaks/);
  rejects(withChecks({ name: 'a', http: 'http://127.0.0.1/', tls: true }), 'health.checks[0].tls', /unknown field/);
  rejects({ ...valid, health: { check: [] } }, 'health.check', /unknown field/);
});
