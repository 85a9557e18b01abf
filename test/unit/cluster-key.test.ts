import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CaLockedError, caCertificateOf, ClusterCa, decodeCaRecord, encodeCaRecord, isSealedCaRecord } from '../../src/security/ca';
import { checkSignerProof, generateClusterKey, openSecret, parseClusterKey, sealSecret, signerProof, WrongClusterKeyError } from '../../src/security/cluster-key';
import { nodesRole, ownPermissions, ownRole, sharedPermissions } from '../../src/store/access';
import { ClusterKeys, hookFailuresPrefix } from '../../src/store/keys';

describe('the cluster key', () => {
  test('parses what generate makes, and refuses anything else naming the field, never quoting the text', () => {
    const text = generateClusterKey();
    assert.match(text, /^vipd-key:[A-Za-z0-9_-]{43}$/);
    assert.equal(parseClusterKey(`${text}\n`, 'f').length, 32);
    for (const bad of ['', 'vipd-key:', 'vipd-key:abc', `vipd-join:${'A'.repeat(43)}`, `vipd-key:${'A'.repeat(44)}`]) {
      assert.throws(() => parseClusterKey(bad, '--cluster-key'), (error: Error) => error.message.startsWith('--cluster-key: must be a cluster key') && (bad.length < 12 || !error.message.includes(bad)));
    }
  });

  test('seals and opens a secret; another key, another cluster, another name or a flipped byte do not open it', () => {
    const key = parseClusterKey(generateClusterKey(), 'k');
    const sealed = sealSecret(key, 'lab', 'ca', 'the secret');
    assert.equal(sealed.alg, 'A256GCM');
    assert.ok(!JSON.stringify(sealed).includes('the secret'));
    assert.equal(openSecret(key, 'lab', 'ca', sealed), 'the secret');
    const other = parseClusterKey(generateClusterKey(), 'k');
    assert.throws(() => openSecret(other, 'lab', 'ca', sealed), WrongClusterKeyError);
    assert.throws(() => openSecret(key, 'prod', 'ca', sealed), WrongClusterKeyError);
    assert.throws(() => openSecret(key, 'lab', 'token', sealed), WrongClusterKeyError);
    const data = Buffer.from(sealed.data, 'base64');
    data[0] = data[0]! ^ 1;
    assert.throws(() => openSecret(key, 'lab', 'ca', { ...sealed, data: data.toString('base64') }), WrongClusterKeyError);
  });

  test('a signer proof is bound to the node name and the key', () => {
    const key = parseClusterKey(generateClusterKey(), 'k');
    const proof = signerProof(key, 'lab', 'node-2');
    assert.match(proof, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(checkSignerProof(key, 'lab', 'node-2', proof), true);
    assert.equal(checkSignerProof(key, 'lab', 'node-3', proof), false);
    assert.equal(checkSignerProof(parseClusterKey(generateClusterKey(), 'k'), 'lab', 'node-2', proof), false);
    assert.equal(checkSignerProof(key, 'lab', 'node-2', 'short'), false);
  });
});

describe('the CA record', () => {
  test('version 2 keeps the private key sealed: the certificate is public, the key opens only with the cluster key', async () => {
    const material = await ClusterCa.generate({ cluster: 'lab' });
    const key = parseClusterKey(generateClusterKey(), 'k');
    const record = encodeCaRecord(material, { clusterKey: key, cluster: 'lab' });
    assert.ok(!record.includes('PRIVATE KEY'));
    assert.equal(JSON.parse(record).version, 2);
    assert.equal(caCertificateOf(record, 'ca'), material.certificate);
    assert.equal(isSealedCaRecord(record, 'ca'), true);
    assert.deepEqual(decodeCaRecord(record, 'ca', { clusterKey: key, cluster: 'lab' }), material);
    assert.throws(() => decodeCaRecord(record, 'ca', null), CaLockedError);
    assert.throws(() => decodeCaRecord(record, 'ca', { clusterKey: parseClusterKey(generateClusterKey(), 'k'), cluster: 'lab' }), WrongClusterKeyError);
  });

  test('version 1 (a cluster set up by hand, without a cluster key) is still read', async () => {
    const material = await ClusterCa.generate({ cluster: 'lab' });
    const record = encodeCaRecord(material, null);
    assert.equal(JSON.parse(record).version, 1);
    // Every node of such a cluster signs: joins are not passed on.
    assert.equal(isSealedCaRecord(record, 'ca'), false);
    assert.deepEqual(decodeCaRecord(record, 'ca', null), material);
    assert.throws(() => decodeCaRecord('{"version":2,"certificate":"x"}', '/vipd/lab/security/ca', null), /the cluster CA stored at \/vipd\/lab\/security\/ca is unreadable/);
  });
});

describe('etcd access rules', () => {
  const keys = new ClusterKeys('lab');
  const writable = (permissions: ReturnType<typeof sharedPermissions>, key: string): boolean =>
    permissions.some((permission) => permission.permission !== 'Read' && (permission.prefix ? key.startsWith(permission.key) : key === permission.key));

  test('a node may write the election\'s shared keys and its own records, and nothing else', () => {
    const shared = sharedPermissions(keys);
    const own = ownPermissions(keys, 'node-3');
    const all = [...shared, ...own];
    for (const key of [keys.leader, keys.handoff, keys.moveRequest, keys.lastRelease, keys.dhcp, keys.event(7), keys.healthEvent(1796662784837, 'node-1', 1), keys.lastSeen('node-1'), `${keys.doctorPrefix}node-3-ab`,
      keys.node('node-3'), keys.alive('node-3'), keys.health('node-3'), `${hookFailuresPrefix(keys)}node-3`]) {
      assert.ok(writable(all, key), key);
    }
    for (const key of [keys.settings, keys.node('node-1'), keys.alive('node-1'), keys.health('node-1'), `${hookFailuresPrefix(keys)}node-1`, '/vipd/lab/security/ca',
      '/vipd/lab/security/tokens/vipd_0', '/vipd/lab/security/tls/uploaded', keys.nameClaim('x'), '/vipd/lab/setup/config', '/vipd/other/leader']) {
      assert.ok(!writable(all, key), key);
    }
    assert.ok(shared.some((permission) => permission.permission === 'Read' && permission.prefix && permission.key === keys.prefix), 'reads the whole cluster');
    assert.equal(nodesRole(keys), 'vipd-lab-nodes');
    assert.equal(ownRole(keys, 'node-3'), 'vipd-lab-node-node-3');
  });
});
