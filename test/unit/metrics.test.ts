import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { AgentMetrics, RENEWAL_BUCKETS_SECONDS, type MetricsSource } from '../../src/metrics/metrics';
import { createApiWorld } from './fakes';

/** A metrics source whose answers the test sets. */
function source(): MetricsSource & { held: boolean; currentTerm: number | null; lease: { ip: string; expiresAt: string } | null } {
  return {
    held: false,
    currentTerm: null,
    lease: null,
    holder() {
      return this.held;
    },
    term() {
      return this.currentTerm;
    },
    dhcpLease() {
      return this.lease;
    },
  };
}

function metrics(overrides: Partial<ConstructorParameters<typeof AgentMetrics>[0]> = {}): AgentMetrics {
  return new AgentMetrics({ node: 'node-1', cluster: 'demo', mode: 'static', profile: 'default', version: '0.1.0', source: source(), defaultMetrics: false, ...overrides });
}

/** The value of one sample line, e.g. value(text, 'vipd_holder') or value(text, 'vipd_transitions_total{reason="fenced"}'). */
function value(text: string, sample: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

describe('agent metrics', () => {
  test('health (issue 13): healthy, per-check up, probes by result and time unhealthy', async () => {
    const check = (name: string, passing: boolean) => ({ name, kind: 'http' as const, target: 'x', passing, since: '', consecutiveFailures: 0, consecutiveSuccesses: 0, fall: 3, rise: 2, lastResult: null });
    let record = { node: 'node-1', healthy: false, failing: ['ui'], since: '', updatedAt: '', checks: [check('api', true), check('ui', false)] };
    const agent = metrics({ source: { ...source(), health: () => ({ record, unhealthySeconds: 12.5 }) } });
    agent.healthProbe('api', true);
    agent.healthProbe('ui', false);
    agent.healthProbe('ui', false);
    let text = await agent.render();
    assert.equal(value(text, 'vipd_healthy'), 0);
    assert.equal(value(text, 'vipd_health_check_up{check="api"}'), 1);
    assert.equal(value(text, 'vipd_health_check_up{check="ui"}'), 0);
    assert.equal(value(text, 'vipd_health_probes_total{check="ui",result="fail"}'), 2);
    assert.equal(value(text, 'vipd_unhealthy_seconds_total'), 12.5);
    record = { ...record, healthy: true, failing: [], checks: [check('api', true), check('ui', true)] };
    text = await agent.render();
    assert.equal(value(text, 'vipd_healthy'), 1);
    assert.equal(value(text, 'vipd_health_check_up{check="ui"}'), 1);
    // Without checks the node is healthy and has no per-check series.
    const plain = await metrics().render();
    assert.equal(value(plain, 'vipd_healthy'), 1);
    assert.equal(plain.includes('vipd_health_check_up{'), false);
  });

  test('preference (issue 14): priority and cordon read at scrape time, reloads by result', async () => {
    let state: 'none' | 'cordoned' | 'strict' = 'none';
    const agent = metrics({ source: { ...source(), priority: () => 150, cordon: () => state } });
    let text = await agent.render();
    assert.equal(value(text, 'vipd_node_priority'), 150);
    assert.equal(value(text, 'vipd_node_cordoned{strict="false"}'), 0);
    assert.equal(value(text, 'vipd_config_reloads_total{result="applied"}'), 0);
    state = 'strict';
    agent.reloaded(true);
    agent.reloaded(false);
    agent.reloaded(false);
    text = await agent.render();
    assert.equal(value(text, 'vipd_node_cordoned{strict="true"}'), 1);
    assert.equal(value(text, 'vipd_node_cordoned{strict="false"}'), undefined);
    assert.equal(value(text, 'vipd_config_reloads_total{result="applied"}'), 1);
    assert.equal(value(text, 'vipd_config_reloads_total{result="refused"}'), 2);
    // Without a source for them: the default priority, not cordoned.
    const plain = await metrics().render();
    assert.equal(value(plain, 'vipd_node_priority'), 100);
    assert.equal(value(plain, 'vipd_node_cordoned{strict="false"}'), 0);
  });

  test('holder and term are read at scrape time; a vacant key keeps the last term', async () => {
    const state = source();
    const agent = metrics({ source: state });
    let text = await agent.render();
    assert.equal(value(text, 'vipd_holder'), 0);
    assert.equal(value(text, 'vipd_term'), 0);
    state.held = true;
    state.currentTerm = 17;
    text = await agent.render();
    assert.equal(value(text, 'vipd_holder'), 1);
    assert.equal(value(text, 'vipd_term'), 17);
    state.held = false;
    state.currentTerm = null;
    assert.equal(value(await agent.render(), 'vipd_term'), 17);
    assert.equal(value(text, 'vipd_info{node="node-1",cluster="demo",mode="static",profile="default",version="0.1.0"}'), 1);
  });

  test('transitions are counted by a bounded reason, every reason present from zero', async () => {
    const agent = metrics();
    let text = await agent.render();
    for (const reason of ['acquired', 'released', 'fenced', 'lease_lost', 'handoff', 'link_down', 'stopping', 'dhcp_lost']) {
      assert.equal(value(text, `vipd_transitions_total{reason="${reason}"}`), 0, reason);
    }
    agent.transition('acquired');
    agent.transition('handoff');
    agent.transition('acquired');
    text = await agent.render();
    assert.equal(value(text, 'vipd_transitions_total{reason="acquired"}'), 2);
    assert.equal(value(text, 'vipd_transitions_total{reason="handoff"}'), 1);
    assert.match(text, /^# TYPE vipd_transitions_total counter$/m);
  });

  test('announcements: a counter and the time of the last one', async () => {
    const agent = metrics();
    assert.equal(value(await agent.render(), 'vipd_last_announcement_timestamp_seconds'), 0);
    const before = Date.now() / 1000;
    agent.announcementSent();
    agent.announcementSent();
    const text = await agent.render();
    assert.equal(value(text, 'vipd_announcements_total'), 2);
    const last = value(text, 'vipd_last_announcement_timestamp_seconds')!;
    assert.ok(last >= before - 0.01 && last <= Date.now() / 1000 + 0.01, String(last));
  });

  test('renewal latency goes into 1 ms … 2 s buckets by kind; the margin is kept only while holding', async () => {
    const agent = metrics();
    agent.renewal('lease', 3, 1500);
    agent.renewal('hold', 0.4, 150);
    agent.renewal('hold', 30, null);
    const text = await agent.render();
    assert.deepEqual(RENEWAL_BUCKETS_SECONDS.slice(0, 1), [0.001]);
    assert.equal(RENEWAL_BUCKETS_SECONDS.at(-1), 2);
    assert.equal(value(text, 'vipd_renewal_duration_seconds_bucket{le="0.002",kind="lease"}'), 0);
    assert.equal(value(text, 'vipd_renewal_duration_seconds_bucket{le="0.005",kind="lease"}'), 1);
    assert.equal(value(text, 'vipd_renewal_duration_seconds_bucket{le="0.001",kind="hold"}'), 1);
    assert.equal(value(text, 'vipd_renewal_duration_seconds_bucket{le="0.05",kind="hold"}'), 2);
    assert.equal(value(text, 'vipd_renewal_duration_seconds_count{kind="hold"}'), 2);
    assert.equal(value(text, 'vipd_fencing_margin_seconds'), 0.15);
  });

  test('the DHCP lease gauge exists in DHCP mode only, and only while there is a lease', async () => {
    assert.doesNotMatch(await metrics().render(), /vipd_dhcp_lease_remaining_seconds/);
    const state = source();
    const agent = metrics({ mode: 'dhcp', source: state });
    assert.doesNotMatch(await agent.render(), /^vipd_dhcp_lease_remaining_seconds\{/m);
    state.lease = { ip: '192.0.2.61', expiresAt: new Date(Date.now() + 90_000).toISOString() };
    const remaining = value(await agent.render(), 'vipd_dhcp_lease_remaining_seconds{ip="192.0.2.61"}')!;
    assert.ok(remaining > 89 && remaining <= 90, String(remaining));
    state.lease = { ip: '192.0.2.61', expiresAt: new Date(Date.now() - 5000).toISOString() };
    assert.equal(value(await agent.render(), 'vipd_dhcp_lease_remaining_seconds{ip="192.0.2.61"}'), 0);
    state.lease = null;
    assert.doesNotMatch(await agent.render(), /^vipd_dhcp_lease_remaining_seconds\{/m);
  });

  test('hook runs by event and outcome, failed attempts by how they failed', async () => {
    const agent = metrics();
    agent.hookAttemptFailed('acquire', 'timeout');
    agent.hookAttemptFailed('acquire', 'exit');
    agent.hookFinished('acquire', 'failed');
    agent.hookFinished('release', 'ok');
    const text = await agent.render();
    assert.equal(value(text, 'vipd_hook_runs_total{event="acquire",outcome="failed"}'), 1);
    assert.equal(value(text, 'vipd_hook_runs_total{event="release",outcome="ok"}'), 1);
    assert.equal(value(text, 'vipd_hook_runs_total{event="fault",outcome="ok"}'), 0);
    assert.equal(value(text, 'vipd_hook_attempt_failures_total{event="acquire",failure="timeout"}'), 1);
    assert.equal(value(text, 'vipd_hook_attempt_failures_total{event="acquire",failure="exit"}'), 1);
  });

  test('each agent has its own registry; process metrics come with it when asked', async () => {
    const one = metrics();
    const two = metrics({ node: 'node-2', defaultMetrics: true });
    one.transition('fenced');
    assert.equal(value(await two.render(), 'vipd_transitions_total{reason="fenced"}'), 0);
    assert.match(await two.render(), /^nodejs_eventloop_lag_seconds /m);
    assert.doesNotMatch(await one.render(), /nodejs_eventloop_lag_seconds/);
    assert.match(one.contentType, /^text\/plain; version=0\.0\.4/);
  });
});

describe('GET /metrics', () => {
  test('needs a token (read is enough) and answers in the Prometheus text format', async () => {
    const agent = metrics();
    agent.transition('acquired');
    const world = await createApiWorld({ metrics: agent });
    try {
      const anonymous = await world.app.inject({ method: 'GET', url: '/metrics' });
      assert.equal(anonymous.statusCode, 401);
      assert.doesNotMatch(anonymous.body, /vipd_/);
      const scraped = await world.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${world.readToken}` } });
      assert.equal(scraped.statusCode, 200);
      assert.match(String(scraped.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      assert.equal(value(scraped.body, 'vipd_transitions_total{reason="acquired"}'), 1);
      assert.equal(scraped.headers['x-content-type-options'], 'nosniff');
      const admin = await world.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${world.adminToken}` } });
      assert.equal(admin.statusCode, 200);
      const query = await world.app.inject({ method: 'GET', url: '/metrics?x=1', headers: { authorization: `Bearer ${world.readToken}` } });
      assert.equal(query.statusCode, 400);
    } finally {
      await world.app.close();
      world.certificates.stop();
    }
  });

  test('is not served when the agent gives no metrics', async () => {
    const world = await createApiWorld();
    try {
      const response = await world.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${world.readToken}` } });
      assert.equal(response.statusCode, 404);
    } finally {
      await world.app.close();
      world.certificates.stop();
    }
  });

  test('the management address carries lastHookFailure through the API', async () => {
    const world = await createApiWorld();
    const failure = { node: 'node-3', hook: '/usr/local/bin/repoint', term: 6, reason: 'required acquire hook /usr/local/bin/repoint failed after 1 attempt: exit code 1', time: new Date().toISOString(), cooldownUntil: new Date().toISOString() };
    const original = world.backend.managementAddress.bind(world.backend);
    world.backend.managementAddress = async () => {
      const view = await original();
      return { ...view, status: { ...view.status, lastHookFailure: failure } };
    };
    try {
      const response = await world.app.inject({ method: 'GET', url: '/v1/management-address', headers: { authorization: `Bearer ${world.readToken}` } });
      assert.equal(response.statusCode, 200);
      assert.deepEqual((JSON.parse(response.body) as { status: { lastHookFailure: unknown } }).status.lastHookFailure, failure);
    } finally {
      await world.app.close();
      world.certificates.stop();
    }
  });
});

describe('the shipped dashboard and alert rules', () => {
  const monitoring = join(__dirname, '..', '..', '..', 'packaging', 'monitoring');

  test('use only metrics the agent exports', async () => {
    const rendered = await metrics({ mode: 'dhcp', defaultMetrics: true }).render();
    const exported = new Set([...rendered.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name, type]) => (type === 'histogram' ? [`${name}_bucket`, `${name}_count`, `${name}_sum`] : [name!])));
    const dashboard = readFileSync(join(monitoring, 'grafana-dashboard.json'), 'utf8');
    JSON.parse(dashboard);
    const rules = parseYaml(readFileSync(join(monitoring, 'vipd-alerts.yaml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    assert.deepEqual(rules.groups[0]!.rules.map((rule) => rule.alert), ['VipdVipUnheld', 'VipdVipOnSeveralNodes', 'VipdFlapping', 'VipdRenewalMarginLow', 'VipdHookFailing', 'VipdAgentDown']);
    const used = [dashboard, ...rules.groups[0]!.rules.map((rule) => rule.expr)].join('\n').match(/\b(vipd|nodejs|process)_[a-z0-9_]+/g) ?? [];
    for (const name of new Set(used)) assert.ok(exported.has(name), `${name} is not exported`);
  });

  test('alert rules pass promtool and their own unit tests', { skip: existsSync('/usr/bin/promtool') ? false : 'promtool is not installed (Debian: prometheus)' }, () => {
    execFileSync('/usr/bin/promtool', ['check', 'rules', 'vipd-alerts.yaml'], { cwd: monitoring, stdio: 'pipe' });
    execFileSync('/usr/bin/promtool', ['test', 'rules', 'vipd-alerts.test.yaml'], { cwd: monitoring, stdio: 'pipe' });
  });
});
