import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FencingDeadline } from '../../src/election/fencing';
import { lastWholeSecondAt, validLifetimeSeconds } from '../../src/holding/vip-address';

test('the deadline counts from the send time of the acknowledged renewal, minus the margin', () => {
  const fencing = new FencingDeadline(200);
  assert.equal(fencing.isValid(0), false, 'no renewal yet: not valid');
  // Sent at t=1000, acknowledged much later: still counted from 1000.
  assert.equal(fencing.acknowledge(1000, 2000), 2800);
  assert.equal(fencing.isValid(2799), true);
  assert.equal(fencing.isValid(2800), false);
  assert.equal(fencing.remainingMs(2000), 800);
});

test('a late ack for an older renewal never moves the deadline back', () => {
  const fencing = new FencingDeadline(200);
  fencing.acknowledge(5000, 2000);
  fencing.acknowledge(4000, 2000);
  assert.equal(fencing.deadline, 6800);
});

test('reset forgets every renewal', () => {
  const fencing = new FencingDeadline(200);
  fencing.acknowledge(1000, 2000);
  fencing.reset();
  assert.equal(fencing.isValid(1001), false);
});

test('the kernel lifetime ends before the deadline, in whole seconds', () => {
  assert.equal(validLifetimeSeconds(1795), 1);
  assert.equal(validLifetimeSeconds(1299), 0);
  assert.equal(validLifetimeSeconds(9000), 8);
});

test('a refresh at the last whole second still gets one, and that second ends before the deadline, kernel slack included', () => {
  const bound = 10_000;
  const at = lastWholeSecondAt(bound);
  assert.equal(validLifetimeSeconds(bound - at), 1);
  // Up to the early allowance late, still one second.
  assert.equal(validLifetimeSeconds(bound - (at + 99)), 1);
  // The kernel may expire it up to 250 ms late (ADDRCONF_TIMER_FUZZ): still before the deadline.
  assert.ok(at + 99 + 1000 + 250 < bound);
  // Against a refresh at the renewal (the deadline 1.8 s ahead), the VIP stays about 0.4 s longer.
  assert.equal(at + 1000 - (bound - 1800 + 1000), 400);
});
