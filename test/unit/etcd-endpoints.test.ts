import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NoopPolicy } from 'cockatiel';
import type { Etcd3 } from 'etcd3';
import { EndpointSteering, steerDeadlineMs } from '../../src/store/etcd-endpoints';

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
