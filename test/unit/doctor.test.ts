import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { resolveConfig } from '../../src/config/config';
import type { NodeRecord } from '../../src/store/records';
import type { InterfaceAddress, InterfaceInfo } from '../../src/holding/netlink';
import { describeManagementAddress } from '../../src/status/management-address';
import { renderOutput } from '../../src/output/output';
import { checkApiCertificate, dnsNameCovers, judgeCertificate, parseSubjectAltNames, readApiSettings } from '../../src/doctor/certificate';
import { checkClock, checkEtcdHealth, checkRenewalLatency, estimateClockOffset, percentile, renewalBudget } from '../../src/doctor/etcd-checks';
import { analyzeChains, isNftBackend, judgeFirewall, nftChains, saveFormatChains, type FirewallTarget } from '../../src/doctor/firewall';
import { checkDhcpReservation, checkMtu, checkSubnet, subnetText } from '../../src/doctor/membership-checks';
import { buildReport, check, doctorExitCode, EXIT_CHECKS_FAILED, formatDoctorTable, overallVerdict, skip, worse, type CheckResult } from '../../src/doctor/report';
import { checkLayer2, checkVipAnswers, localAnswerers, type Answers } from '../../src/doctor/segment';

const execFileAsync = promisify(execFile);

// ---- nftables and iptables analysis ----

const V4: FirewallTarget = { interfaces: ['mgmt-br'], ipv6: false, vip: '192.0.2.10', apiPort: 443 };
const V6: FirewallTarget = { interfaces: ['mgmt-br'], ipv6: true, vip: '2001:db8::10', apiPort: 443 };

/** A ruleset as `nft -j list ruleset` prints it: chains first, then their rules in order. */
function ruleset(...items: object[]): object {
  return { nftables: [{ metainfo: { version: '1.0.6', json_schema_version: 1 } }, ...items] };
}
const chain = (family: string, table: string, name: string, hook?: string, policy: 'accept' | 'drop' = 'accept') => ({
  chain: { family, table, name, handle: 1, ...(hook ? { type: 'filter', hook, prio: 0, policy } : {}) },
});
let nextHandle = 10;
const rule = (family: string, table: string, chainName: string, ...expr: object[]) => ({
  rule: { family, table, chain: chainName, handle: nextHandle++, expr },
});
const match = (left: object, right: unknown, op = '==') => ({ match: { op, left, right } });
const tcpDport = { payload: { protocol: 'tcp', field: 'dport' } };
const DROP = { drop: null };
const ACCEPT = { accept: null };

function findings(json: object, target = V4) {
  return analyzeChains(nftChains(json, target.interfaces), target);
}

describe('nftables rules that drop ARP or the API port', () => {
  test('an empty ruleset, and rules about other traffic, drop nothing', () => {
    assert.deepEqual(findings(ruleset()), []);
    const other = ruleset(
      chain('inet', 'fw', 'input', 'input'),
      rule('inet', 'fw', 'input', match({ payload: { protocol: 'udp', field: 'dport' } }, 443), DROP),
      rule('inet', 'fw', 'input', match({ meta: { key: 'iifname' } }, 'eth1'), match(tcpDport, 443), DROP),
      rule('inet', 'fw', 'input', match(tcpDport, { set: [22, 80] }), { reject: { type: 'tcp reset' } }),
      rule('inet', 'fw', 'input', match({ meta: { key: 'nfproto' } }, 'ipv6'), DROP),
      chain('bridge', 'br', 'forward', 'forward'),
      rule('bridge', 'br', 'forward', match({ payload: { protocol: 'ether', field: 'type' } }, 'ip6'), DROP),
    );
    assert.deepEqual(findings(other), []);
  });

  test('an arp-family drop is certain, and names table, chain and handle', () => {
    const json = ruleset(chain('arp', 'vipdtest', 'input', 'input'), { rule: { family: 'arp', table: 'vipdtest', chain: 'input', handle: 2, expr: [DROP] } });
    const found = findings(json);
    assert.deepEqual(found, [{ where: 'arp vipdtest input handle 2', rule: 'drop', drops: 'ARP', certain: true }]);
    const result = judgeFirewall({ findings: found, sources: ['nftables'], target: V4 });
    assert.equal(result.verdict, 'fail');
    assert.match(result.detail, /arp vipdtest input handle 2 drops ARP/);
    assert.match(result.hint ?? '', /vrrp_strict/);
  });

  test('ARP drops in bridge and netdev families, by ether type, meta protocol or arp fields', () => {
    const json = ruleset(
      chain('bridge', 'br', 'forward', 'forward'),
      rule('bridge', 'br', 'forward', match({ payload: { protocol: 'ether', field: 'type' } }, 'arp'), DROP),
      chain('netdev', 'nd', 'ingress', 'ingress'),
      rule('netdev', 'nd', 'ingress', match({ payload: { protocol: 'arp', field: 'operation' } }, 'request'), DROP),
      chain('bridge', 'br2', 'input', 'input'),
      rule('bridge', 'br2', 'input', match({ meta: { key: 'protocol' } }, 'arp'), { limit: { rate: 10, per: 'second' } }, DROP),
    );
    const found = findings(json);
    const byWhere = new Map(found.map((finding) => [finding.where.replace(/ handle \d+$/, ''), finding.certain]));
    assert.equal(byWhere.get('bridge br forward'), true);
    assert.equal(byWhere.get('netdev nd ingress'), true, 'dropping ARP requests breaks resolution');
    assert.equal(byWhere.get('bridge br2 input'), false, 'a rate limit makes it only possible');
  });

  test('the API port: literal, anonymous and named sets, ranges, negation, vmap', () => {
    const json = ruleset(
      { set: { family: 'inet', table: 'fw', name: 'blocked', type: 'inet_service', elem: [22, { range: [400, 500] }] } },
      chain('inet', 'a', 'input', 'input'),
      rule('inet', 'a', 'input', match(tcpDport, 443), DROP),
      chain('inet', 'fw', 'input', 'input'),
      rule('inet', 'fw', 'input', match(tcpDport, '@blocked'), DROP),
      chain('ip', 'b', 'input', 'input'),
      rule('ip', 'b', 'input', match(tcpDport, 22, '!='), { log: null }, DROP),
      chain('ip', 'c', 'forward', 'forward'),
      rule('ip', 'c', 'forward', match({ payload: { protocol: 'th', field: 'dport' } }, { set: [{ range: [400, 500] }, 8443] }), { reject: null }),
      chain('inet', 'd', 'input', 'input'),
      rule('inet', 'd', 'input', { vmap: { key: tcpDport, data: { set: [[22, ACCEPT], [443, DROP]] } } }),
    );
    const where = findings(json).filter((finding) => finding.certain).map((finding) => finding.where.replace(/ handle \d+$/, '')).sort();
    assert.deepEqual(where, ['inet a input', 'inet d input', 'inet fw input', 'ip b input', 'ip c forward']);
  });

  test('chain order: an earlier accept shadows a later drop; jumps are followed', () => {
    const shadowed = ruleset(
      chain('inet', 'fw', 'input', 'input'),
      rule('inet', 'fw', 'input', match(tcpDport, { set: [22, 443] }), ACCEPT),
      rule('inet', 'fw', 'input', DROP),
    );
    assert.deepEqual(findings(shadowed).filter((finding) => finding.drops !== 'ARP'), []);
    const jumped = ruleset(
      chain('inet', 'fw', 'input', 'input'),
      chain('inet', 'fw', 'sub'),
      rule('inet', 'fw', 'input', { jump: { target: 'sub' } }),
      rule('inet', 'fw', 'sub', match(tcpDport, 'https'), DROP),
    );
    assert.deepEqual(findings(jumped).map((finding) => [finding.where.replace(/ handle \d+$/, ''), finding.certain]), [['inet fw sub', true]]);
    const conditionalJump = ruleset(
      chain('inet', 'fw', 'input', 'input'),
      chain('inet', 'fw', 'sub'),
      rule('inet', 'fw', 'input', match({ payload: { protocol: 'ip', field: 'saddr' } }, { prefix: { addr: '198.51.100.0', len: 24 } }), { jump: { target: 'sub' } }),
      rule('inet', 'fw', 'sub', match(tcpDport, 443), DROP),
    );
    assert.deepEqual(findings(conditionalJump).map((finding) => finding.certain), [false]);
  });

  test('a policy drop with no accept for the port is certain; accepting it fixes that', () => {
    const closed = ruleset(
      chain('inet', 'fw', 'input', 'input', 'drop'),
      rule('inet', 'fw', 'input', match({ ct: { key: 'state' } }, ['established', 'related']), ACCEPT),
      rule('inet', 'fw', 'input', match(tcpDport, 22), ACCEPT),
    );
    const found = findings(closed);
    assert.deepEqual(found, [{ where: 'inet fw input policy drop', rule: 'policy drop, and no rule accepts tcp dport 443', drops: 'tcp dport 443', certain: true }]);
    const open = ruleset(
      chain('inet', 'fw', 'input', 'input', 'drop'),
      rule('inet', 'fw', 'input', match(tcpDport, { set: [22, 443] }), ACCEPT),
    );
    assert.deepEqual(findings(open), []);
  });

  test('a drop that depends on sources is only possible: warn, not fail', () => {
    const json = ruleset(
      chain('ip', 'fw', 'input', 'input'),
      rule('ip', 'fw', 'input', match({ payload: { protocol: 'ip', field: 'saddr' } }, { prefix: { addr: '198.51.100.0', len: 24 } }), match(tcpDport, 443), DROP),
      rule('ip', 'fw', 'input', match({ payload: { protocol: 'ip', field: 'saddr' } }, '198.51.100.7'), DROP),
    );
    const found = findings(json);
    assert.equal(found.length, 1, 'the second rule does not single out the API');
    assert.equal(found[0]!.certain, false);
    assert.equal(judgeFirewall({ findings: found, sources: ['nftables'], target: V4 }).verdict, 'warn');
  });

  test('a rule on the VIP address counts; one on another destination does not', () => {
    const daddr = { payload: { protocol: 'ip', field: 'daddr' } };
    const json = ruleset(
      chain('ip', 'fw', 'input', 'input'),
      rule('ip', 'fw', 'input', match(daddr, '192.0.2.99'), match(tcpDport, 443), DROP),
      rule('ip', 'fw', 'input', match(daddr, { prefix: { addr: '192.0.2.0', len: 24 } }), match(tcpDport, 443), DROP),
    );
    const found = findings(json);
    assert.equal(found.length, 1);
    assert.equal(found[0]!.certain, true);
    assert.match(found[0]!.rule, /ip daddr 192\.0\.2\.0\/24 tcp dport 443 drop/);
  });

  test('IPv6: dropping ICMPv6 breaks neighbour discovery unless NS and NA are accepted first', () => {
    const nexthdr = match({ payload: { protocol: 'ip6', field: 'nexthdr' } }, 'ipv6-icmp');
    const broken = ruleset(chain('ip6', 'fw', 'input', 'input'), rule('ip6', 'fw', 'input', nexthdr, DROP));
    assert.deepEqual(findings(broken, V6).map((finding) => finding.drops), ['neighbour discovery']);
    assert.deepEqual(findings(broken, V4), [], 'an IPv4 cluster does not care');
    const fixed = ruleset(
      chain('ip6', 'fw', 'input', 'input'),
      rule('ip6', 'fw', 'input', match({ payload: { protocol: 'icmpv6', field: 'type' } }, { set: ['nd-neighbor-solicit', 'nd-neighbor-advert'] }), ACCEPT),
      rule('ip6', 'fw', 'input', nexthdr, DROP),
    );
    assert.deepEqual(findings(fixed, V6), []);
  });

  test('without an API port only ARP is looked at, and the verdict says so', () => {
    const target = { ...V4, apiPort: null };
    const json = ruleset(chain('inet', 'fw', 'input', 'input'), rule('inet', 'fw', 'input', match(tcpDport, 443), DROP));
    const found = analyzeChains(nftChains(json, target.interfaces), target);
    assert.deepEqual(found, []);
    assert.match(judgeFirewall({ findings: found, sources: ['nftables'], target }).detail, /no rule in nftables drops ARP \(the API is not configured/);
    assert.equal(judgeFirewall({ findings: [], sources: [], target, unavailable: 'nft is not installed' }).verdict, 'skip');
  });
});

describe('iptables-save and arptables-save', () => {
  test('policy DROP with an ACCEPT for the port is fine; a REJECT via multiport is not', () => {
    const open = ['*filter', ':INPUT DROP [0:0]', ':FORWARD ACCEPT [0:0]', '-A INPUT -i lo -j ACCEPT', '-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT', 'COMMIT'].join('\n');
    assert.deepEqual(analyzeChains(saveFormatChains(open, 'ip', ['mgmt-br']), V4), []);
    const rejected = ['*filter', ':INPUT ACCEPT [0:0]', '-A INPUT -p tcp -m multiport --dports 80,443 -j REJECT --reject-with icmp-port-unreachable', 'COMMIT'].join('\n');
    assert.deepEqual(
      analyzeChains(saveFormatChains(rejected, 'ip', ['mgmt-br']), V4).map((finding) => [finding.where, finding.certain]),
      [['iptables filter INPUT rule 1', true]],
    );
  });

  test('interfaces, negations and user chains', () => {
    const text = [
      '*filter',
      ':INPUT ACCEPT [0:0]',
      ':GUARD - [0:0]',
      '-A INPUT -i eth9 -j DROP',
      '-A INPUT ! -i mgmt-br -j DROP',
      '-A INPUT -p tcp -j GUARD',
      '-A GUARD -p tcp --dport 400:500 -j DROP',
      'COMMIT',
    ].join('\n');
    assert.deepEqual(analyzeChains(saveFormatChains(text, 'ip', ['mgmt-br']), V4).map((finding) => finding.where), ['iptables filter GUARD rule 1']);
  });

  test('arptables: an unconditional INPUT drop, and an opcode filter', () => {
    const text = ['*filter', ':INPUT ACCEPT', ':OUTPUT ACCEPT', '-A INPUT -j DROP', '-A OUTPUT --opcode Reply -j DROP'].join('\n');
    const found = analyzeChains(saveFormatChains(text, 'arp', ['mgmt-br']), V4);
    assert.deepEqual(found.map((finding) => [finding.where, finding.certain]), [['arptables filter INPUT rule 1', true], ['arptables filter OUTPUT rule 1', true]]);
  });

  test('rules held by the nftables backend are recognised, so they are not read twice', () => {
    assert.equal(isNftBackend('# Generated by iptables-nft-save v1.8.9 (nf_tables) on Mon\n*filter\n'), true);
    assert.equal(isNftBackend('# Generated by iptables-save v1.8.7 on Mon\n*filter\n'), false);
  });
});

// ---- verdicts, the report, the table ----

describe('verdict aggregation and the report', () => {
  const results: CheckResult[] = [
    check('etcd', 'ok', 'the endpoint is healthy'),
    check('clock', 'warn', "this node's clock is 1.50 s behind etcd's (±0.02 s)", 'run NTP'),
    skip('dhcp-reservation', 'static mode'),
  ];

  test('worst verdict wins; skip never raises it', () => {
    assert.equal(worse('ok', 'warn'), 'warn');
    assert.equal(worse('fail', 'warn'), 'fail');
    assert.equal(worse('skip', 'ok'), 'ok');
    assert.equal(worse('skip', 'skip'), 'skip');
    assert.equal(overallVerdict([skip('a', 'x')]), 'ok');
    assert.equal(overallVerdict(results), 'warn');
  });

  test('exit 0 with warnings and skips, 3 with any failure', () => {
    const report = buildReport('demo', 'node-1', results, new Date('2026-01-01T00:00:00Z'));
    assert.deepEqual(report.summary, { ok: 1, warn: 1, fail: 0, skip: 1 });
    assert.equal(doctorExitCode(report), 0);
    const failed = buildReport('demo', 'node-1', [...results, check('firewall', 'fail', 'arp t input handle 2 drops ARP', 'remove it')]);
    assert.equal(failed.verdict, 'fail');
    assert.equal(doctorExitCode(failed), EXIT_CHECKS_FAILED);
    assert.equal(EXIT_CHECKS_FAILED, 3);
  });

  test('the table: aligned columns, problems in capitals with their fix, a summary line', () => {
    const report = buildReport('demo', 'node-1', [...results, check('firewall', 'fail', 'arp t input handle 2 drops ARP', 'remove the rule')]);
    const lines = formatDoctorTable(report).split('\n');
    assert.match(lines[0]!, /^CHECK\s+VERDICT\s+DETAIL$/);
    const detailColumn = lines[0]!.indexOf('DETAIL');
    assert.equal(lines[1]!.indexOf('the endpoint'), detailColumn);
    assert.match(lines[2]!, /^clock\s+WARN\s+this node's clock/);
    assert.equal(lines[3]!.indexOf('fix: run NTP'), detailColumn, 'the hint sits under the detail');
    assert.match(lines[4]!, /^dhcp-reservation\s+skip\s+static mode$/);
    assert.match(lines[5]!, /^firewall\s+FAIL\s+arp t input handle 2 drops ARP$/);
    assert.match(lines[6]!, /fix: remove the rule$/);
    assert.equal(lines.at(-2), 'FAIL: 1 ok, 1 warn, 1 fail, 1 skipped (node node-1, cluster demo)');
  });

  test('-o json and -o yaml carry every check with name, verdict, detail and hint', () => {
    const report = buildReport('demo', 'node-1', results);
    const json = JSON.parse(renderOutput('json', report, () => formatDoctorTable(report))) as typeof report;
    assert.deepEqual(json, report);
    assert.deepEqual(json.checks[1], { name: 'clock', verdict: 'warn', detail: "this node's clock is 1.50 s behind etcd's (±0.02 s)", hint: 'run NTP' });
    assert.deepEqual(parseYaml(renderOutput('yaml', report, () => '')), report);
  });
});

// ---- membership checks ----

function node(name: string, ip: string, extra: Partial<NodeRecord> = {}): NodeRecord {
  return { name, interface: 'mgmt-br', ip, prefixLength: 24, mac: `02:00:00:00:00:${ip.split('.').at(-1)!.padStart(2, '0').slice(-2)}`, mtu: 1500, registeredAt: '2026-01-01T00:00:00Z', ...extra };
}
const nodes = [node('node-1', '192.0.2.11'), node('node-2', '192.0.2.12'), node('node-3', '192.0.2.13')];
const localIf = { name: 'mgmt-br', mtu: 1500, addresses: [{ address: '192.0.2.11', prefixLength: 24 }, { address: '2001:db8::11', prefixLength: 64 }] };
const vipRef = { address: '192.0.2.10', what: 'VIP' };

describe('subnet, MTU and DHCP reservation', () => {
  test('subnet text', () => {
    assert.equal(subnetText('192.0.2.11', 24), '192.0.2.0/24');
    assert.equal(subnetText('192.0.2.130', 25), '192.0.2.128/25');
    assert.equal(subnetText('2001:db8::11', 64), '2001:db8::/64');
  });

  test('every node in the VIP subnet is ok; one outside fails and is named', () => {
    const ok = checkSubnet({ cluster: 'lab', local: localIf, interfaceName: 'mgmt-br', reference: vipRef, nodes });
    assert.equal(ok.verdict, 'ok');
    assert.equal(ok.detail, 'the VIP 192.0.2.10 and all 3 registered nodes are in 192.0.2.0/24');
    const bad = checkSubnet({ cluster: 'lab', local: localIf, interfaceName: 'mgmt-br', reference: vipRef, nodes: [...nodes, node('node-4', '198.51.100.14')] });
    assert.equal(bad.verdict, 'fail');
    assert.match(bad.detail, /^node-4 \(198\.51\.100\.14\) is outside 192\.0\.2\.0\/24/);
    assert.match(bad.hint ?? '', /etcdctl del \/vipd\/lab\/nodes\/NAME/);
  });

  test('differing netmasks warn; no interface, or a VIP outside every subnet, fail', () => {
    const masks = checkSubnet({ cluster: 'lab', local: localIf, interfaceName: 'mgmt-br', reference: vipRef, nodes: [...nodes.slice(0, 2), node('node-3', '192.0.2.13', { prefixLength: 16 })] });
    assert.equal(masks.verdict, 'warn');
    assert.match(masks.detail, /node-3 \/16/);
    assert.equal(checkSubnet({ cluster: 'lab', local: null, interfaceName: 'mgmt-br', reference: vipRef, nodes }).verdict, 'fail');
    const outside = checkSubnet({ cluster: 'lab', local: localIf, interfaceName: 'mgmt-br', reference: { address: '198.51.100.10', what: 'VIP' }, nodes });
    assert.equal(outside.verdict, 'fail');
    assert.match(outside.detail, /198\.51\.100\.10 is not inside the subnet of any address on mgmt-br \(192\.0\.2\.11\/24, 2001:db8::11\/64\)/);
    const dhcpNoLease = checkSubnet({ cluster: 'lab', local: localIf, interfaceName: 'mgmt-br', reference: null, nodes });
    assert.equal(dhcpNoLease.detail, 'all 3 registered nodes are in 192.0.2.0/24');
  });

  test('MTU: one value is ok, two fail with who has which, unknown ones warn', () => {
    assert.deepEqual(checkMtu({ selfName: 'node-1', localMtu: 1500, nodes }), check('mtu', 'ok', 'MTU 1500 on all 3 nodes'));
    const mixed = checkMtu({ selfName: 'node-1', localMtu: 9000, nodes });
    assert.equal(mixed.verdict, 'fail');
    assert.equal(mixed.detail, "the management interfaces' MTU differs: 1500 on node-2, node-3; 9000 on node-1");
    const old = checkMtu({ selfName: 'node-1', localMtu: 1500, nodes: [...nodes, { ...node('node-4', '192.0.2.14'), mtu: undefined as unknown as number }] });
    assert.equal(old.verdict, 'warn');
    assert.match(old.detail, /unknown on node-4/);
  });

  test('DHCP reservation: skipped when static, ok when the leased IP is the requested one, fail otherwise', () => {
    const leader = { node: 'node-1', ip: '192.0.2.11', mac: '02:00:00:09:7f:3f', since: '2026-01-01T00:00:00Z', term: 3 };
    const lease = (leasedIP: string | null, state: 'bound' | 'lost' = 'bound') => ({
      holder: 'node-1', hwaddr: '02:00:00:09:7f:3f', requestedIP: '192.0.2.60', state, reason: state === 'lost' ? 'NAK' : null, leasedIP,
      leaseSeconds: 120, boundAt: null, renewAt: null, rebindAt: null, expiresAt: null, updatedAt: '2026-01-01T00:00:00Z',
    });
    const view = (leasedIP: string | null, state: 'bound' | 'lost' = 'bound') =>
      describeManagementAddress({ cluster: 'lab', address: '192.0.2.60', mode: 'dhcp', interface: 'mgmt-br', leader, hwaddr: '02:00:00:09:7f:3f', dhcp: lease(leasedIP, state) });
    assert.equal(checkDhcpReservation(describeManagementAddress({ cluster: 'lab', address: '192.0.2.10', mode: 'static', interface: 'mgmt-br', leader })).verdict, 'skip');
    assert.equal(checkDhcpReservation(view('192.0.2.60')).verdict, 'ok');
    const wrong = checkDhcpReservation(view('192.0.2.77'));
    assert.equal(wrong.verdict, 'fail');
    assert.match(wrong.detail, /leased 192\.0\.2\.77, not the requested 192\.0\.2\.60/);
    assert.match(wrong.hint ?? '', /dhcp-host=02:00:00:09:7f:3f,192\.0\.2\.60/);
    assert.equal(checkDhcpReservation(view(null, 'lost')).verdict, 'warn');
  });
});

// ---- layer 2 and the VIP ----

describe('layer 2 and who answers for the VIP', () => {
  const answered = (entries: Array<[string, string[]]>): Answers => new Map(entries.map(([ip, macs]) => [ip, new Set(macs)]));
  const base = { selfName: 'node-1', ownIp: '192.0.2.11', interfaceName: 'mgmt-br', nodes, live: new Set(['node-1', 'node-2', 'node-3']), roundMs: 300, rounds: 2 };

  test('every other node answering from its registered MAC is ok', () => {
    const result = checkLayer2({ ...base, answers: answered([['192.0.2.12', ['02:00:00:00:00:12']], ['192.0.2.13', ['02:00:00:00:00:13']]]) });
    assert.deepEqual(result, check('layer2', 'ok', 'node-2, node-3 answer ARP on mgmt-br from their registered MACs'));
  });

  test('a silent node fails by name; so does another MAC or two of them', () => {
    const silent = checkLayer2({ ...base, answers: answered([['192.0.2.12', ['02:00:00:00:00:12']], ['192.0.2.13', []]]) });
    assert.equal(silent.verdict, 'fail');
    assert.equal(silent.detail, 'node-3 (192.0.2.13) did not answer ARP within 2×300 ms (its agent is running)');
    const other = checkLayer2({ ...base, answers: answered([['192.0.2.12', ['0a:0b:0c:0d:0e:0f']], ['192.0.2.13', ['02:00:00:00:00:13', '0a:0b:0c:0d:0e:0f']]]) });
    assert.equal(other.verdict, 'fail');
    assert.match(other.detail, /node-2's IP 192\.0\.2\.12 answers from 0a:0b:0c:0d:0e:0f, not its registered 02:00:00:00:00:12/);
    assert.match(other.detail, /node-3's IP 192\.0\.2\.13 answers from 2 MACs/);
    assert.equal(checkLayer2({ ...base, nodes: nodes.slice(0, 1), answers: new Map() }).verdict, 'skip');
  });

  test('the VIP: the holder alone is ok; two MACs, or none while held, fail', () => {
    const owners = new Map([['02:00:00:00:00:11', 'node-1'], ['02:00:00:00:00:12', 'node-2']]);
    const input = { vip: '192.0.2.10', holder: 'node-1', expectedMac: '02:00:00:00:00:11', owners, roundMs: 300 };
    assert.deepEqual(checkVipAnswers({ ...input, answering: ['02:00:00:00:00:11'] }), check('vip-answers', 'ok', 'only 02:00:00:00:00:11 (node-1, the holder) answers ARP for 192.0.2.10'));
    const two = checkVipAnswers({ ...input, answering: ['02:00:00:00:00:12', '02:00:00:00:00:11', '02:00:00:00:00:11'] });
    assert.equal(two.verdict, 'fail');
    assert.equal(two.detail, 'the VIP answers from two MACs: 02:00:00:00:00:11 (node-1, the holder), 02:00:00:00:00:12 (node-2)');
    assert.equal(checkVipAnswers({ ...input, answering: [] }).verdict, 'fail');
    assert.match(checkVipAnswers({ ...input, answering: ['02:00:00:00:00:12'] }).detail, /not the holder node-1's 02:00:00:00:00:11/);
    assert.equal(checkVipAnswers({ ...input, holder: null, expectedMac: null, answering: [] }).verdict, 'warn');
    assert.equal(checkVipAnswers({ ...input, vip: null, noVipReason: 'DHCP mode: no lease', answering: [] }).detail, 'DHCP mode: no lease');
  });

  test('this node answers for addresses on its management interface, its macvlan, and (IPv4, arp_ignore 0) any other', () => {
    const interfaces: InterfaceInfo[] = [
      { index: 1, name: 'lo', mac: '00:00:00:00:00:00', mtu: 65536, usable: true, kind: null },
      { index: 2, name: 'mgmt-br', mac: '02:00:00:00:00:11', mtu: 1500, usable: true, kind: 'veth' },
      { index: 3, name: 'vipd-vip', mac: '02:00:00:09:7f:3f', mtu: 1500, usable: true, kind: 'macvlan' },
    ];
    const at = (interfaceIndex: number, address: string): InterfaceAddress => ({ interfaceIndex, address, prefixLength: 32, preferredLifetime: 0, validLifetime: 5 });
    const ask = (addresses: InterfaceAddress[], address = '192.0.2.10', ignore = 0) => localAnswerers({ address, managementInterface: 'mgmt-br', interfaces, addresses, arpIgnore: ignore });
    assert.deepEqual(ask([]), []);
    assert.deepEqual(ask([at(2, '192.0.2.10')]), ['02:00:00:00:00:11']);
    assert.deepEqual(ask([at(3, '192.0.2.10')]), ['02:00:00:09:7f:3f']);
    assert.deepEqual(ask([at(1, '192.0.2.10')]), ['02:00:00:00:00:11'], 'Linux answers ARP for an address on lo');
    assert.deepEqual(ask([at(1, '192.0.2.10')], '192.0.2.10', 1), [], 'unless arp_ignore is set');
    assert.deepEqual(ask([at(1, '2001:db8::10')], '2001:db8::10'), [], 'NDP answers only for the receiving interface');
  });
});

// ---- etcd: health, clock, latency ----

describe('etcd health, clock and renewal latency', () => {
  test('unreachable fails; a partly unhealthy cluster warns', () => {
    const down = checkEtcdHealth({ reachable: false, error: 'connect ECONNREFUSED', endpoints: [{ endpoint: 'http://192.0.2.2:2379', healthy: null, reason: null, version: null }] });
    assert.equal(down.verdict, 'fail');
    assert.match(down.detail, /cannot reach etcd at http:\/\/192\.0\.2\.2:2379: connect ECONNREFUSED/);
    const partly = checkEtcdHealth({
      reachable: true,
      endpoints: [
        { endpoint: 'http://a:2379', healthy: true, reason: null, version: '3.5.9' },
        { endpoint: 'http://b:2379', healthy: false, reason: 'ALARM NOSPACE', version: null },
      ],
    });
    assert.equal(partly.verdict, 'warn');
    assert.match(partly.detail, /1 of 2 endpoints healthy, etcd 3\.5\.9; http:\/\/b:2379 unhealthy \(ALARM NOSPACE\)/);
    const garbled = checkEtcdHealth({ reachable: true, endpoints: [{ endpoint: 'http://a:2379', healthy: true, reason: null, version: '3.5.9' }], dataError: 'Unexpected token n in JSON', prefix: '/vipd/lab/' });
    assert.equal(garbled.verdict, 'fail', 'bad data is not an unreachable etcd');
    assert.match(garbled.hint ?? '', /etcdctl get --prefix \/vipd\/lab\//);
  });

  test('samples on both sides of a tick of the Date header pin the offset down', () => {
    // Server 1.3 s ahead; requests take 10 ms; the server stamps mid-way.
    const offset = 1300;
    const samples = [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000].map((sent) => {
      const stampedLocal = 10_000 + sent + 5;
      return { sentAt: 10_000 + sent, answeredAt: 10_000 + sent + 10, serverSecondMs: Math.floor((stampedLocal + offset) / 1000) * 1000 };
    });
    const estimate = estimateClockOffset(samples)!;
    assert.ok(estimate.lowMs <= offset && offset <= estimate.highMs, JSON.stringify(estimate));
    assert.ok(estimate.highMs - estimate.lowMs <= 120, `narrowed to ${estimate.highMs - estimate.lowMs} ms`);
    assert.equal(estimateClockOffset([]), null);
  });

  test('clock verdicts count only what was proven: ok within 1 s, warn past it, fail past 5 s', () => {
    const at = (lowMs: number, highMs: number) => checkClock([{ endpoint: 'http://192.0.2.2:2379', offset: { lowMs, highMs } }]);
    assert.equal(at(-30, 20).verdict, 'ok');
    assert.match(at(-30, 20).detail, /agrees with etcd's to within 0\.03 s/);
    assert.equal(at(-1600, -1500).verdict, 'warn');
    assert.match(at(-1600, -1500).detail, /1\.55 s ahead of etcd's/);
    const far = at(6000, 6100);
    assert.equal(far.verdict, 'fail');
    assert.match(far.detail, /6\.05 s behind/);
    assert.match(far.hint ?? '', /certificates/);
    assert.match(far.hint ?? '', /monotonic/);
    assert.equal(at(800, 1200).verdict, 'ok', 'not proven past 1 s');
    assert.equal(checkClock([{ endpoint: 'x', offset: null, error: 'no Date header' }]).verdict, 'skip');
  });

  test('renewal latency against (window − margin)/2 and /4, per profile', () => {
    assert.equal(percentile([5, 1, 3, 2, 4], 50), 3);
    assert.equal(percentile([5, 1, 3, 2, 4], 99), 5);
    const standard = resolveConfig({ cluster: 'c', node: { name: 'n', interface: 'eth0' }, vip: { mode: 'static', address: '192.0.2.10' }, etcd: { endpoints: ['http://192.0.2.2:2379'] } }).election;
    const fast = resolveConfig({ cluster: 'c', node: { name: 'n', interface: 'eth0' }, vip: { mode: 'static', address: '192.0.2.10' }, etcd: { endpoints: ['http://192.0.2.2:2379'] }, election: { profile: 'fast' } }).election;
    assert.deepEqual(renewalBudget(standard), { windowMs: 2000, windowName: 'lease TTL', marginMs: 200, failAboveMs: 900, warnAboveMs: 450 });
    assert.deepEqual(renewalBudget(fast), { windowMs: 200, windowName: 'hold timeout', marginMs: 40, failAboveMs: 80, warnAboveMs: 40 });
    const quick = Array.from({ length: 20 }, () => 2);
    assert.equal(checkRenewalLatency(quick, fast).verdict, 'ok');
    assert.match(checkRenewalLatency(quick, fast).detail, /p50 2\.0 ms, p99 2\.0 ms; a renewal has \(200 ms hold timeout − 40 ms margin\)\/2 = 80 ms \(fast profile\)/);
    assert.equal(checkRenewalLatency([...quick.slice(1), 50], fast).verdict, 'warn');
    assert.equal(checkRenewalLatency([...quick.slice(1), 95], fast).verdict, 'fail');
    assert.equal(checkRenewalLatency([...quick.slice(1), 95], standard).verdict, 'ok');
  });
});

// ---- the API certificate ----

describe('the API certificate', () => {
  const now = new Date('2026-06-01T00:00:00Z');
  const certificate = (subjectAltName: string, validTo = '2027-01-01T00:00:00Z') => ({ subjectAltName, validFrom: new Date('2026-01-01T00:00:00Z'), validTo: new Date(validTo) });

  test('api settings are read defensively', () => {
    assert.equal(readApiSettings({}), null);
    assert.equal(readApiSettings(null), null);
    assert.deepEqual(readApiSettings({ api: {} }), { enabled: true, port: 443, fqdn: null });
    assert.deepEqual(readApiSettings({ api: { enabled: false, port: 8443, fqdn: 'VIP.Example.com' } }), { enabled: false, port: 8443, fqdn: 'vip.example.com' });
    assert.deepEqual(readApiSettings({ api: { port: 'nonsense', fqdn: 42 } }), { enabled: true, port: 443, fqdn: null });
  });

  test('SANs as Node prints them, IPv6 expanded, and wildcards', () => {
    assert.deepEqual(parseSubjectAltNames('DNS:vip.example.com, IP Address:192.0.2.10, IP Address:2001:DB8:0:0:0:0:0:10, DNS:"odd,name"'), {
      dns: ['vip.example.com', 'odd,name'],
      ips: ['192.0.2.10', '2001:DB8:0:0:0:0:0:10'],
    });
    assert.equal(dnsNameCovers('*.example.com', 'vip.example.com'), true);
    assert.equal(dnsNameCovers('*.example.com', 'a.vip.example.com'), false);
    assert.equal(dnsNameCovers('*.example.com', 'example.com'), false);
    assert.equal(dnsNameCovers('VIP.example.com', 'vip.example.com.'), true);
  });

  test('the VIP must be an IP SAN; the FQDN and expiry soon warn; expired fails', () => {
    const judge = (sans: string, fqdn: string | null, validTo?: string, vip = '192.0.2.10') => judgeCertificate({ vip, fqdn, port: 443, certificate: certificate(sans, validTo), now });
    const ok = judge('DNS:vip.example.com, IP Address:192.0.2.10', 'vip.example.com');
    assert.equal(ok.verdict, 'ok');
    assert.match(ok.detail, /covers 192\.0\.2\.10 and vip\.example\.com; valid until 2027-01-01 \(214 days\)/);
    assert.equal(judge('IP Address:2001:DB8:0:0:0:0:0:10', null, undefined, '2001:db8::10').verdict, 'ok');
    const noVip = judge('DNS:vip.example.com', 'vip.example.com');
    assert.equal(noVip.verdict, 'fail');
    assert.match(noVip.detail, /does not list the VIP 192\.0\.2\.10 as an IP SAN \(it lists DNS:vip\.example\.com\)/);
    assert.equal(judge('IP Address:192.0.2.10', 'vip.example.com').verdict, 'warn');
    const soon = judge('IP Address:192.0.2.10', null, '2026-06-20T00:00:00Z');
    assert.equal(soon.verdict, 'warn');
    assert.match(soon.detail, /expires in 19 days/);
    assert.equal(judge('IP Address:192.0.2.10', null, '2026-05-01T00:00:00Z').verdict, 'fail');
  });

  test('over TLS on loopback: reads the served certificate; skips when nothing listens', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'vipd-doctor-'));
    try {
      try {
        execFileSync('openssl', [
          'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '10',
          '-subj', '/CN=vipd-test', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:vip.example.test',
          '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
        ], { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (error) {
        // Only a missing binary is a reason to skip; openssl failing is a failure.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          t.skip('openssl is not installed to make a test certificate (Debian: openssl)');
          return;
        }
        throw error;
      }
      const server = tls.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (socket) => socket.end());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as AddressInfo).port;
      try {
        const result = await checkApiCertificate({ settings: { enabled: true, port, fqdn: 'vip.example.test' }, vip: '127.0.0.1' });
        assert.equal(result.verdict, 'warn', result.detail);
        assert.match(result.detail, /expires in (9|10) days/);
      } finally {
        server.close();
      }
      // A port nobody listens on: take one and give it back.
      const probe = createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      const free = (probe.address() as AddressInfo).port;
      await new Promise((resolve) => probe.close(resolve));
      const nothing = await checkApiCertificate({ settings: { enabled: true, port: free, fqdn: null }, vip: '127.0.0.1' });
      assert.equal(nothing.verdict, 'skip');
      assert.match(nothing.detail, /nothing listens there/);
      assert.equal((await checkApiCertificate({ settings: null, vip: '127.0.0.1' })).verdict, 'skip');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---- the command's exit code for bad input ----

describe('vipd doctor: bad input exits 2', () => {
  const cli = join(__dirname, '../../src/main.js');
  const exitCode = async (args: string[]): Promise<{ code: number; stderr: string }> => {
    try {
      await execFileAsync(process.execPath, [cli, ...args], { timeout: 20_000 });
      return { code: 0, stderr: '' };
    } catch (error) {
      const failed = error as { code?: number; stderr?: string };
      return { code: failed.code ?? -1, stderr: failed.stderr ?? '' };
    }
  };

  test('an unreadable config, and an unknown -o, before any check runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vipd-doctor-'));
    try {
      const missing = await exitCode(['doctor', '--config', join(dir, 'absent.yaml')]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /--config: cannot read/);
      const configPath = join(dir, 'config.yaml');
      // Never contacted: -o is checked first.
      writeFileSync(configPath, 'cluster: c\nnode: { name: n, interface: lo }\nvip: { mode: static, address: 192.0.2.10 }\netcd: { endpoints: ["http://127.0.0.1:9"] }\n');
      const badFormat = await exitCode(['doctor', '--config', configPath, '-o', 'xml']);
      assert.equal(badFormat.code, 2);
      assert.match(badFormat.stderr, /-o: unknown output format "xml"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
