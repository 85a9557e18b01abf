import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isLinkLocalV6, prefixLengthOfNetmask, sameSubnet } from '../../src/holding/codecs/subnet';

test('subnet membership by prefix', () => {
  assert.equal(sameSubnet('192.0.2.10', '192.0.2.11', 24), true);
  assert.equal(sameSubnet('192.0.2.10', '198.51.100.11', 24), false);
  assert.equal(sameSubnet('192.0.2.130', '192.0.2.11', 25), false);
  assert.equal(sameSubnet('192.0.2.10', '192.0.2.10', 32), true);
  assert.equal(sameSubnet('2001:db8::10', '2001:db8::11', 64), true);
  assert.equal(sameSubnet('2001:db8:1::10', '2001:db8::11', 64), false);
  assert.equal(sameSubnet('192.0.2.10', '2001:db8::11', 0), false, 'families never mix');
  assert.equal(isLinkLocalV6('fe80::1'), true);
  assert.equal(isLinkLocalV6('2001:db8::1'), false);
});

test('netmask to prefix length', () => {
  assert.equal(prefixLengthOfNetmask('255.255.255.0'), 24);
  assert.equal(prefixLengthOfNetmask('255.255.255.255'), 32);
  assert.equal(prefixLengthOfNetmask('255.255.255.128'), 25);
  assert.equal(prefixLengthOfNetmask('255.255.254.0'), 23);
  assert.equal(prefixLengthOfNetmask('255.0.0.0'), 8);
  assert.equal(prefixLengthOfNetmask('128.0.0.0'), 1);
  // Anything that is not a usable mask: the address alone.
  for (const bad of [undefined, null, '', '0.0.0.0', '255.0.255.0', '255.255.255.1', '255.255.255', '24', 'ffff:ff00::']) {
    assert.equal(prefixLengthOfNetmask(bad), 32, String(bad));
  }
});
