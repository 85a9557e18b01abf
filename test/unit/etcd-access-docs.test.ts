import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ownPermissions, sharedPermissions, type KeyPermission } from '../../src/store/access';
import { ClusterKeys } from '../../src/store/keys';

const DOC = join(__dirname, '..', '..', '..', 'docs', 'security.md');

/** The grants docs/security.md's etcdctl commands give, expanded from their shell loops. */
function documentedGrants(text: string, role: string): string[] {
  const grants: string[] = [];
  for (const line of text.split('\n')) {
    const loop = /^for (\w+) in ([^;]+); do etcdctl role grant-permission (\S+) (--prefix=true )?(\w+) (\S+); done$/.exec(line);
    if (loop && loop[3] === role) {
      for (const item of loop[2]!.trim().split(/\s+/)) grants.push(`${loop[5]} ${loop[6]!.replace(`$${loop[1]}`, item)}${loop[4] ? ' prefix' : ''}`);
      continue;
    }
    const single = /^etcdctl role grant-permission (\S+) (--prefix=true )?(\w+) (\S+)$/.exec(line);
    if (single && single[1] === role) grants.push(`${single[3]} ${single[4]}${single[2] ? ' prefix' : ''}`);
  }
  return grants.sort();
}

const asGrants = (permissions: KeyPermission[]): string[] =>
  permissions.map((permission) => `${permission.permission.toLowerCase()} ${permission.key}${permission.prefix ? ' prefix' : ''}`).sort();

test('the etcdctl commands in docs/security.md grant what vipd grants in the cluster\'s key range', () => {
  const text = readFileSync(DOC, 'utf8');
  const keys = new ClusterKeys('vipd');
  // The readiness probes' keys outside the cluster prefix matter to the embedded store only.
  const shared = sharedPermissions(keys).filter((permission) => permission.key.startsWith(keys.prefix));
  assert.deepEqual(documentedGrants(text, 'vipd-vipd-nodes'), asGrants(shared));
  assert.deepEqual(documentedGrants(text, 'vipd-vipd-node-node-2'), asGrants(ownPermissions(keys, 'node-2')));
});
