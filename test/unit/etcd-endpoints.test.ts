import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NoopPolicy } from 'cockatiel';
import type { Etcd3 } from 'etcd3';
import { EndpointSteering, steerDeadlineMs } from '../../src/store/etcd-endpoints';
import { hedge } from '../../src/store/etcd-store';

/** A member that answers Status and range reads, or never answers (frozen) until thawed. */
class FakeMember {
  frozen = false;
  statusCalls = 0;
  rangeCalls = 0;
  constructor(private readonly policy: NoopPolicy) {}

  private answer<T>(value: T, deadline: number | undefined): Promise<T> {
    return this.policy.execute(() => new Promise<T>((resolve, reject) => {
      if (!this.frozen) return resolve(value);
      setTimeout(() => reject(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded')), Math.max(0, (deadline ?? Date.now()) - Date.now()));
    }));
  }

  readonly client = {
    maintenance: { status: (options?: { deadline: number }) => { this.statusCalls += 1; return this.answer({}, options?.deadline); } },
    kv: { range: (_request: unknown, options?: { deadline: number }) => { this.rangeCalls += 1; return this.answer({ kvs: [] }, options?.deadline); } },
    close: () => undefined,
  };
}

function steering(endpoints: string[]): { steering: EndpointSteering; members: Map<string, FakeMember>; moves: string[] } {
  const members = new Map<string, FakeMember>();
  const moves: string[] = [];
  const result = new EndpointSteering({
    endpoints,
    probeIntervalMs: 30,
    leaderlessMs: 50,
    statusDeadlineMs: 20,
    onSteer: (from, to) => moves.push(`${from}->${to}`),
    connect: (endpoint, policy) => {
      const member = new FakeMember(policy);
      members.set(endpoint, member);
      return member.client as unknown as Etcd3;
    },
  });
  return { steering: result, members, moves };
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('the other members get a connection at once (warm), the active one is left alone', () => {
  const { steering: s, members } = steering(['https://a:2379']);
  s.setEndpoints(['https://b:2379', 'https://c:2379']);
  assert.equal(s.endpoint, 'https://a:2379');
  assert.equal(members.get('https://b:2379')?.statusCalls, 1);
  assert.equal(members.get('https://c:2379')?.statusCalls, 1);
  assert.equal(members.get('https://a:2379'), undefined, 'no call made to the active member');
  s.close();
});

test('a silent own member: calls move on once Status goes unanswered too, and come back when it answers', async () => {
  const { steering: s, members, moves } = steering(['https://a:2379']);
  s.setEndpoints(['https://b:2379']);
  s.clientFor('https://a:2379');
  const own = members.get('https://a:2379')!;
  own.frozen = true;
  s.report('https://a:2379', new Error('lease renewal timed out after 600ms'));
  await until('the move', () => s.endpoint === 'https://b:2379');
  assert.deepEqual(moves, ['https://a:2379->https://b:2379']);
  // Still frozen: the probes of the preferred member fail and calls stay away.
  await until('two probes', () => own.rangeCalls >= 2);
  assert.equal(s.endpoint, 'https://b:2379');
  own.frozen = false;
  await until('the way back', () => s.endpoint === 'https://a:2379');
  assert.deepEqual(moves, ['https://a:2379->https://b:2379', 'https://b:2379->https://a:2379']);
  s.close();
});

test('a member that answers Status stays: every member is in the same etcd election', async () => {
  const { steering: s, members, moves } = steering(['https://a:2379', 'https://b:2379']);
  s.clientFor('https://a:2379');
  s.report('https://a:2379', new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'));
  await until('the Status check', () => members.get('https://a:2379')!.statusCalls === 1);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(s.endpoint, 'https://a:2379');
  assert.deepEqual(moves, []);
  s.close();
});

test('the election calls deadline: a third of the window in the default profile, all of it in the fast one', () => {
  assert.equal(steerDeadlineMs(2000, 200, 'default'), 600);
  assert.equal(steerDeadlineMs(200, 40, 'fast'), 160);
});

test('the standby is the next member, the one that failed longest ago', () => {
  const { steering: s } = steering(['https://a:2379']);
  assert.equal(s.standby, null, 'one endpoint: no standby');
  s.setEndpoints(['https://b:2379', 'https://c:2379']);
  assert.equal(s.standby, 'https://b:2379');
  s.close();
});

const after = <T>(ms: number, value: T, fail = false): Promise<T> =>
  new Promise((resolve, reject) => setTimeout(() => (fail ? reject(new Error(String(value))) : resolve(value)), ms));

test('hedge: an answer in time is the answer, and nothing else is sent', async () => {
  let sent = 0;
  assert.equal(await hedge(after(5, 'first'), () => { sent += 1; return after(0, 'second'); }, 50), 'first');
  assert.equal(sent, 0);
});

test('hedge: a silent first call gets a second, and the first answer of the two wins', async () => {
  assert.equal(await hedge(after(1000, 'first'), () => after(5, 'second'), 20), 'second');
  assert.equal(await hedge(after(40, 'first'), () => after(500, 'second'), 20), 'first');
});

test('hedge: no second call while the first member still answers other calls (busy, not frozen)', async () => {
  let sent = 0;
  assert.equal(await hedge(after(60, 'first'), () => { sent += 1; return after(0, 'second'); }, 20, () => false), 'first');
  assert.equal(sent, 0);
});

test('silence per member: since its last answer', async () => {
  const { steering: s } = steering(['https://a:2379']);
  assert.equal(s.silentForMs('https://a:2379'), Infinity);
  await s.clientFor('https://a:2379').maintenance.status();
  assert.ok(s.silentForMs('https://a:2379') < 1000);
  s.close();
});

test("hedge: a failure in time is the first call's, and when both fail the first's error is thrown", async () => {
  let sent = 0;
  await assert.rejects(hedge(after(5, 'no leader', true), () => { sent += 1; return after(0, 'second'); }, 50), /no leader/);
  assert.equal(sent, 0);
  await assert.rejects(hedge(after(60, 'first failed', true), () => after(5, 'second failed', true), 20), /first failed/);
});
