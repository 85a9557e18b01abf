import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { DhcpClient, type DhcpState } from '../../src/holding/dhcp-client';

/** Feeds udhcpc hook lines to a client without running udhcpc, and collects its states. */
function client(): { feed: (line: string) => void; states: DhcpState[] } {
  const states: DhcpState[] = [];
  const dhcp = new DhcpClient({ interfaceName: 'vipd-vip', requestedIp: null, logger: pino({ level: 'silent' }), onChange: (state) => states.push(state) });
  const feed = (line: string): void => (dhcp as unknown as { onLine(line: string): void }).onLine(line);
  return { feed, states };
}

const BOUND = '@@vipd event=bound ip=192.0.2.61 mask=255.255.255.0 lease=120 serverid=192.0.2.3 message=';

test('after the lease expired, udhcpc failing to get a new one keeps the reason it was lost', () => {
  const { feed, states } = client();
  feed(BOUND);
  feed('@@vipd event=deconfig ip= mask= lease= serverid= message=');
  feed('@@vipd event=leasefail ip= mask= lease= serverid= message=');
  const last = states.at(-1);
  assert.equal(last?.state, 'lost');
  assert.match(last?.state === 'lost' ? last.reason : '', /lease expired/);
});

test('a first lease that never comes is "no DHCP server answered"', () => {
  const { feed, states } = client();
  feed('@@vipd event=leasefail ip= mask= lease= serverid= message=');
  assert.deepEqual(states.map((state) => (state.state === 'lost' ? state.reason : state.state)), ['no DHCP server answered']);
});
