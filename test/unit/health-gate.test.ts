import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideByHealth } from '../../src/agent/health-gate';

const failing = 'check api failing: HTTP 503';

test('a healthy node is eligible and asks for nothing', () => {
  for (const holdsKey of [true, false]) {
    const decision = decideByHealth({ unhealthy: null, failed: false, holdsKey, healthyPeers: ['node-2'], moveTargets: ['node-2'] });
    assert.deepEqual([decision.eligible, decision.moveTo, decision.heldWhileUnhealthy], [true, null, false]);
  }
});

test('an unhealthy holder with a healthy peer stays eligible and asks for a planned move to it (never a drop)', () => {
  const decision = decideByHealth({ unhealthy: failing, failed: true, holdsKey: true, healthyPeers: ['node-2', 'node-3'], moveTargets: ['node-2', 'node-3'] });
  assert.deepEqual([decision.eligible, decision.moveTo, decision.heldWhileUnhealthy], [true, 'node-2', false]);
});

test('an unhealthy holder with no healthy peer stays put and says so', () => {
  const decision = decideByHealth({ unhealthy: failing, failed: true, holdsKey: true, healthyPeers: [], moveTargets: [] });
  assert.deepEqual([decision.eligible, decision.moveTo, decision.heldWhileUnhealthy], [true, null, true]);
});

test('a holder whose checks are still rising after start does not move the VIP', () => {
  const decision = decideByHealth({ unhealthy: 'check api failing (no result yet)', failed: false, holdsKey: true, healthyPeers: ['node-2'], moveTargets: ['node-2'] });
  assert.deepEqual([decision.eligible, decision.moveTo], [true, null]);
});

test('an unhealthy follower is not eligible while a peer is healthy, and is when none is (a vacant VIP is better taken)', () => {
  assert.equal(decideByHealth({ unhealthy: failing, failed: true, holdsKey: false, healthyPeers: ['node-2'], moveTargets: ['node-2'] }).eligible, false);
  assert.equal(decideByHealth({ unhealthy: failing, failed: true, holdsKey: false, healthyPeers: [], moveTargets: [] }).eligible, true);
});

test('no bounce: with every node unhealthy, no node is ever told to move the VIP', () => {
  // Three unhealthy nodes; whichever holds, the others are not healthy peers.
  for (const holder of ['node-1', 'node-2', 'node-3']) {
    for (const node of ['node-1', 'node-2', 'node-3']) {
      const decision = decideByHealth({ unhealthy: failing, failed: true, holdsKey: node === holder, healthyPeers: [], moveTargets: [] });
      assert.equal(decision.moveTo, null);
    }
  }
});

test('every service dies at once: a holder does not leave for a peer whose checks have started failing, even below fall', () => {
  // node-2 and node-3 are still healthy by verdict (one or two failures, fall 3), so a vacant VIP would still go to them first...
  assert.equal(decideByHealth({ unhealthy: failing, failed: true, holdsKey: false, healthyPeers: ['node-2', 'node-3'], moveTargets: [] }).eligible, false);
  // ...but the holder that reached fall first stays put rather than hand the VIP to a node about to fail.
  const decision = decideByHealth({ unhealthy: failing, failed: true, holdsKey: true, healthyPeers: ['node-2', 'node-3'], moveTargets: [] });
  assert.deepEqual([decision.moveTo, decision.heldWhileUnhealthy], [null, true]);
  assert.equal(decideByHealth({ unhealthy: failing, failed: true, holdsKey: true, healthyPeers: ['node-2', 'node-3'], moveTargets: ['node-3'] }).moveTo, 'node-3');
});
