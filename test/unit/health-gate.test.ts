import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideByHealth } from '../../src/agent/health-gate';

const failing = 'check api failing: HTTP 503';

test('a healthy node is eligible and asks for nothing', () => {
  for (const holdsKey of [true, false]) {
    const decision = decideByHealth({ unhealthy: null, failed: false, holdsKey, healthyPeers: ['node-2'] });
    assert.deepEqual([decision.eligible, decision.moveTo, decision.heldWhileUnhealthy], [true, null, false]);
  }
});

test('an unhealthy holder with a healthy peer stays eligible and asks for a planned move to it (never a drop)', () => {
  const decision = decideByHealth({ unhealthy: failing, failed: true, holdsKey: true, healthyPeers: ['node-2', 'node-3'] });
  assert.deepEqual([decision.eligible, decision.moveTo, decision.heldWhileUnhealthy], [true, 'node-2', false]);
});

test('an unhealthy holder with no healthy peer stays put and says so', () => {
  const decision = decideByHealth({ unhealthy: failing, failed: true, holdsKey: true, healthyPeers: [] });
  assert.deepEqual([decision.eligible, decision.moveTo, decision.heldWhileUnhealthy], [true, null, true]);
});

test('a holder whose checks are still rising after start does not move the VIP', () => {
  const decision = decideByHealth({ unhealthy: 'check api failing (no result yet)', failed: false, holdsKey: true, healthyPeers: ['node-2'] });
  assert.deepEqual([decision.eligible, decision.moveTo], [true, null]);
});

test('an unhealthy follower is not eligible while a peer is healthy, and is when none is (a vacant VIP is better taken)', () => {
  assert.equal(decideByHealth({ unhealthy: failing, failed: true, holdsKey: false, healthyPeers: ['node-2'] }).eligible, false);
  assert.equal(decideByHealth({ unhealthy: failing, failed: true, holdsKey: false, healthyPeers: [] }).eligible, true);
});

test('no bounce: with every node unhealthy, no node is ever told to move the VIP', () => {
  // Three unhealthy nodes; whichever holds, the others are not healthy peers.
  for (const holder of ['node-1', 'node-2', 'node-3']) {
    for (const node of ['node-1', 'node-2', 'node-3']) {
      const decision = decideByHealth({ unhealthy: failing, failed: true, holdsKey: node === holder, healthyPeers: [] });
      assert.equal(decision.moveTo, null);
    }
  }
});
