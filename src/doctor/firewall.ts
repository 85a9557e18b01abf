/**
 * Check 9: no firewall rule drops ARP (IPv6: neighbour discovery) or the API port: the trap
 * keepalived users hit with vrrp_strict. Reads `nft -j list ruleset`, and iptables-save /
 * ip6tables-save / arptables-save where a legacy (non-nftables) backend is in use.
 *
 * Rules are evaluated against a model packet: each condition is true, false, or unknown
 * (source addresses, conntrack state, marks...). A drop whose conditions are all true is a
 * certain finding (fail); one that also depends on unknowns, and names what we care about
 * (the port, ARP), is a possible finding (warn). Chains are walked in order, so an earlier
 * accept of the port or of ARP shadows a later drop, and jumps are followed.
 */
import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import { ipToBytes } from '../holding/codecs/ip';
import { sameSubnet } from '../holding/codecs/subnet';
import { check, skip, type CheckResult } from './report';

type Tri = 'yes' | 'no' | 'maybe';

/** What the rule conditions are evaluated against. */
export interface ModelPacket {
  /** Shown in findings: "ARP", "tcp dport 443". */
  label: string;
  etherType: 'arp' | 'ip' | 'ip6';
  l4: 'tcp' | 'icmpv6' | null;
  dport?: number;
  arpOperation?: 'request' | 'reply';
  icmpv6Type?: 'nd-neighbor-solicit' | 'nd-neighbor-advert';
  daddr?: string;
}

export interface FirewallTarget {
  /** Interfaces the VIP's traffic arrives on: the management interface (and the DHCP macvlan). */
  interfaces: string[];
  /** The address family of the segment: ARP for IPv4, neighbour discovery for IPv6. */
  ipv6: boolean;
  vip: string | null;
  apiPort: number | null;
}

export interface FirewallFinding {
  /** "arp vipdtest input handle 2", or "inet filter input policy drop". */
  where: string;
  /** A short rendering of the rule. */
  rule: string;
  drops: string;
  certain: boolean;
}

interface Eval {
  result: Tri;
  /** True when a condition singled out the packet we care about (the port, ARP, ND). */
  specific: boolean;
}

type Condition = (packet: ModelPacket, hook: string | null) => Eval;

type RuleVerdict =
  | { kind: 'accept' | 'drop' | 'return' | 'continue' }
  | { kind: 'jump' | 'goto'; target: string }
  | { kind: 'map'; resolve: (packet: ModelPacket, hook: string | null) => { verdict: RuleVerdict | null; eval: Eval } };

export interface RuleModel {
  where: string;
  text: string;
  conditions: Condition[];
  verdict: RuleVerdict | null;
}

export interface ChainModel {
  /** Where the rules came from ("nft", "iptables-save"...): chains jump only within one source. */
  source: string;
  /** How findings name the chain: "inet filter input", "iptables filter INPUT". */
  label: string;
  family: string;
  table: string;
  name: string;
  hook: string | null;
  policy: 'accept' | 'drop' | null;
  rules: RuleModel[];
}

const YES: Eval = { result: 'yes', specific: false };
const NO: Eval = { result: 'no', specific: false };
const MAYBE: Eval = { result: 'maybe', specific: false };

function and(a: Eval, b: Eval): Eval {
  if (a.result === 'no' || b.result === 'no') return NO;
  const result: Tri = a.result === 'maybe' || b.result === 'maybe' ? 'maybe' : 'yes';
  return { result, specific: a.specific || b.specific };
}

function fromBoolean(value: boolean | null, specific: boolean): Eval {
  if (value === null) return MAYBE;
  return value ? { result: 'yes', specific } : NO;
}

// ---- the packets we care about, and where they pass ----

/** Which hooks of which families a model packet traverses. */
function traverses(packet: ModelPacket, family: string, hook: string | null): boolean {
  if (hook === null) return false;
  if (family === 'bridge') return true;
  if (family === 'netdev') return hook === 'ingress' || (packet.etherType === 'arp' && hook === 'egress');
  if (packet.etherType === 'arp') return family === 'arp' && (hook === 'input' || hook === 'output');
  const l3 = family === 'inet' || family === (packet.etherType === 'ip' ? 'ip' : 'ip6');
  if (!l3) return false;
  // Neighbour discovery goes both ways; the API's requests come in, maybe forwarded to a pod or VM.
  if (packet.l4 === 'icmpv6') return hook === 'prerouting' || hook === 'input' || hook === 'output';
  return hook === 'prerouting' || hook === 'input' || hook === 'forward';
}

export function modelPackets(target: FirewallTarget): ModelPacket[] {
  const packets: ModelPacket[] = target.ipv6
    ? [
        { label: 'neighbour discovery', etherType: 'ip6', l4: 'icmpv6', icmpv6Type: 'nd-neighbor-solicit' },
        { label: 'neighbour discovery', etherType: 'ip6', l4: 'icmpv6', icmpv6Type: 'nd-neighbor-advert' },
      ]
    : [
        { label: 'ARP', etherType: 'arp', l4: null, arpOperation: 'request' },
        { label: 'ARP', etherType: 'arp', l4: null, arpOperation: 'reply' },
      ];
  if (target.apiPort !== null) {
    const v6 = target.vip ? isIP(target.vip) === 6 : target.ipv6;
    packets.push({
      label: `tcp dport ${target.apiPort}`,
      etherType: v6 ? 'ip6' : 'ip',
      l4: 'tcp',
      dport: target.apiPort,
      ...(target.vip ? { daddr: target.vip } : {}),
    });
  }
  return packets;
}

// ---- walking chains ----

function chainKey(source: string, family: string, table: string, name: string): string {
  return `${source} ${family} ${table} ${name}`;
}

interface WalkResult {
  outcome: 'accept' | 'drop' | 'return' | 'none';
  /** The rule that dropped, when outcome is drop. */
  by?: RuleModel;
}

function walk(chains: Map<string, ChainModel>, chain: ChainModel, packet: ModelPacket, hook: string | null, findings: FirewallFinding[], depth: number): WalkResult {
  if (depth > 16) return { outcome: 'none' };
  for (const rule of chain.rules) {
    let condition: Eval = YES;
    for (const evaluate of rule.conditions) {
      condition = and(condition, evaluate(packet, hook));
      if (condition.result === 'no') break;
    }
    if (condition.result === 'no' || !rule.verdict) continue;
    let verdict: RuleVerdict | null = rule.verdict;
    if (verdict.kind === 'map') {
      const mapped = verdict.resolve(packet, hook);
      condition = and(condition, mapped.eval);
      verdict = mapped.verdict;
      if (!verdict || condition.result === 'no') continue;
    }
    const sure = condition.result === 'yes';
    switch (verdict.kind) {
      case 'accept':
        // A conditional accept that names the packet (e.g. from some sources only) shows intent: stop there.
        if (sure || condition.specific) return { outcome: 'accept' };
        break;
      case 'drop':
        if (sure) return { outcome: 'drop', by: rule };
        if (condition.specific) findings.push({ where: rule.where, rule: rule.text, drops: packet.label, certain: false });
        break;
      case 'return':
        if (sure) return { outcome: 'return' };
        break;
      case 'jump':
      case 'goto': {
        const next = chains.get(chainKey(chain.source, chain.family, chain.table, verdict.target));
        if (!next) break;
        const inner = walk(chains, next, packet, hook, findings, depth + 1);
        if (inner.outcome === 'drop') {
          if (sure) return inner;
          findings.push({ where: inner.by!.where, rule: inner.by!.text, drops: packet.label, certain: false });
        } else if (inner.outcome === 'accept' && sure) {
          return inner;
        } else if (verdict.kind === 'goto' && sure) {
          return { outcome: 'return' };
        }
        break;
      }
      default:
        break;
    }
  }
  return { outcome: 'none' };
}

/** Every finding for every model packet, one per rule. */
export function analyzeChains(chainList: ChainModel[], target: FirewallTarget): FirewallFinding[] {
  const chains = new Map(chainList.map((chain) => [chainKey(chain.source, chain.family, chain.table, chain.name), chain]));
  const findings: FirewallFinding[] = [];
  for (const packet of modelPackets(target)) {
    for (const chain of chainList) {
      if (!traverses(packet, chain.family, chain.hook)) continue;
      const result = walk(chains, chain, packet, chain.hook, findings, 0);
      if (result.outcome === 'drop') {
        findings.push({ where: result.by!.where, rule: result.by!.text, drops: packet.label, certain: true });
      } else if ((result.outcome === 'none' || result.outcome === 'return') && chain.policy === 'drop') {
        findings.push({ where: `${chain.label} policy drop`, rule: `policy drop, and no rule accepts ${packet.label}`, drops: packet.label, certain: true });
      }
    }
  }
  // One line per rule and packet kind; a certain finding wins over a possible one.
  const unique = new Map<string, FirewallFinding>();
  for (const finding of findings) {
    const key = `${finding.where}|${finding.drops}`;
    const existing = unique.get(key);
    if (!existing || (finding.certain && !existing.certain)) unique.set(key, finding);
  }
  return [...unique.values()];
}

// ---- value comparisons shared by nft and iptables ----

const ETHER_TYPES: Record<string, number> = { ip: 0x0800, arp: 0x0806, ip6: 0x86dd, ipv6: 0x86dd };
const L4_NUMBERS: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, 'ipv6-icmp': 58, icmpv6: 58, sctp: 132 };
const ICMPV6_TYPES: Record<string, number> = { 'nd-neighbor-solicit': 135, 'nd-neighbor-advert': 136 };
const SERVICES: Record<string, number> = { http: 80, https: 443, ssh: 22, 'http-alt': 8080, 'https-alt': 8443 };
const ARP_OPERATIONS: Record<string, number> = { request: 1, reply: 2 };

function toNumber(value: unknown, names: Record<string, number>): number | null {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return null;
  const lower = value.toLowerCase();
  if (lower in names) return names[lower]!;
  if (/^0x[0-9a-f]+$/.test(lower)) return parseInt(lower, 16);
  if (/^[0-9]+$/.test(lower)) return Number(lower);
  return null;
}

/** Glob-style interface names as nft and iptables write them ("eth*", "eth+"). */
function interfaceMatches(pattern: string, name: string): boolean {
  if (pattern.endsWith('*') || pattern.endsWith('+')) return name.startsWith(pattern.slice(0, -1));
  return pattern === name;
}

// ---- nftables JSON ----

type Json = unknown;

function isObject(value: Json): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

interface NftSet {
  elements: Json[];
}

/** Does a match's right-hand side contain the value? null when it cannot be told. */
function nftContains(right: Json, value: string | number, kind: 'number' | 'name' | 'ip', names: Record<string, number>, sets: Map<string, NftSet>, family: string, table: string): boolean | null {
  if (typeof right === 'string' && right.startsWith('@')) {
    const set = sets.get(`${family} ${table} ${right.slice(1)}`);
    if (!set) return null;
    return anyOf(set.elements.map((element) => nftContains(element, value, kind, names, sets, family, table)));
  }
  if (Array.isArray(right)) return anyOf(right.map((element) => nftContains(element, value, kind, names, sets, family, table)));
  if (isObject(right)) {
    if (Array.isArray(right['set'])) return anyOf(right['set'].map((element) => nftContains(element, value, kind, names, sets, family, table)));
    if (Array.isArray(right['range']) && right['range'].length === 2) {
      if (kind === 'ip') return ipInRange(String(value), right['range'][0], right['range'][1]);
      const target = typeof value === 'number' ? value : toNumber(value, names);
      const low = toNumber(right['range'][0], names);
      const high = toNumber(right['range'][1], names);
      return target === null || low === null || high === null ? null : target >= low && target <= high;
    }
    if (kind === 'ip' && isObject(right['prefix'])) {
      const { addr, len } = right['prefix'];
      if (typeof addr !== 'string' || typeof len !== 'number' || !isIP(addr)) return null;
      return sameSubnet(String(value), addr, len);
    }
    return null;
  }
  if (kind === 'ip') return typeof right === 'string' && isIP(right) ? sameAddress(String(value), right) : null;
  if (kind === 'name' && typeof right === 'string' && typeof value === 'string') return right.toLowerCase() === value.toLowerCase() ? true : compareNumbers(right, value, names);
  return compareNumbers(right, value, names);
}

function compareNumbers(right: Json, value: string | number, names: Record<string, number>): boolean | null {
  const a = toNumber(right, names);
  const b = typeof value === 'number' ? value : toNumber(value, names);
  return a === null || b === null ? null : a === b;
}

function sameAddress(a: string, b: string): boolean {
  return isIP(a) === isIP(b) && ipToBytes(a).equals(ipToBytes(b));
}

function ipInRange(value: string, low: Json, high: Json): boolean | null {
  if (typeof low !== 'string' || typeof high !== 'string' || isIP(low) !== isIP(value) || isIP(high) !== isIP(value)) return null;
  const v = ipToBytes(value);
  return Buffer.compare(ipToBytes(low), v) <= 0 && Buffer.compare(v, ipToBytes(high)) <= 0;
}

/** true if any is true; null if none is but some are unknown. */
function anyOf(values: Array<boolean | null>): boolean | null {
  if (values.some((value) => value === true)) return true;
  return values.some((value) => value === null) ? null : false;
}

interface FieldValue {
  value?: string | number;
  kind: 'number' | 'name' | 'ip';
  names: Record<string, number>;
  /** Whether matching this field singles out the packet we care about. */
  specific: boolean;
  /** An interface-name field: any of these names (patterns on the right may be globs). */
  interfaces?: string[];
  /** The packet has no such header, so the match is false (nft adds a protocol dependency). */
  absent?: boolean;
  /** A field we do not model (addresses, marks, conntrack): the match may go either way. */
  unknown?: boolean;
}

const UNKNOWN_FIELD: FieldValue = { kind: 'number', names: {}, specific: false, unknown: true };
const ABSENT_FIELD: FieldValue = { kind: 'number', names: {}, specific: false, absent: true };

/** The value a packet has for an nft expression's left-hand side. */
function nftField(left: Json, packet: ModelPacket, hook: string | null, interfaces: string[]): FieldValue {
  if (!isObject(left)) return UNKNOWN_FIELD;
  const payload = left['payload'];
  if (isObject(payload)) {
    const protocol = String(payload['protocol']);
    const field = String(payload['field']);
    switch (protocol) {
      case 'ether':
        return field === 'type' ? { value: packet.etherType, kind: 'name', names: ETHER_TYPES, specific: packet.etherType === 'arp' } : UNKNOWN_FIELD;
      case 'arp':
        if (packet.etherType !== 'arp') return ABSENT_FIELD;
        return field === 'operation' ? { value: packet.arpOperation!, kind: 'name', names: ARP_OPERATIONS, specific: true } : { ...UNKNOWN_FIELD, specific: true };
      case 'ip':
      case 'ip6': {
        if (packet.etherType !== protocol) return ABSENT_FIELD;
        if (field === 'protocol' || field === 'nexthdr') return packet.l4 ? { value: packet.l4, kind: 'name', names: L4_NUMBERS, specific: packet.l4 === 'icmpv6' } : UNKNOWN_FIELD;
        if (field === 'daddr' && packet.daddr && packet.l4 === 'tcp') return { value: packet.daddr, kind: 'ip', names: {}, specific: true };
        return UNKNOWN_FIELD;
      }
      case 'tcp':
      case 'th':
        if (packet.l4 !== 'tcp') return ABSENT_FIELD;
        return field === 'dport' ? { value: packet.dport!, kind: 'number', names: SERVICES, specific: true } : UNKNOWN_FIELD;
      case 'icmpv6':
        if (packet.l4 !== 'icmpv6') return ABSENT_FIELD;
        return field === 'type' ? { value: packet.icmpv6Type!, kind: 'name', names: ICMPV6_TYPES, specific: true } : UNKNOWN_FIELD;
      case 'udp':
      case 'udplite':
      case 'sctp':
      case 'dccp':
      case 'icmp':
      case 'igmp':
      case 'esp':
      case 'ah':
      case 'comp':
        return ABSENT_FIELD;
      default:
        return UNKNOWN_FIELD;
    }
  }
  const meta = left['meta'];
  if (isObject(meta)) {
    const key = String(meta['key']);
    if (key === 'protocol') return { value: packet.etherType, kind: 'name', names: ETHER_TYPES, specific: packet.etherType === 'arp' };
    if (key === 'nfproto') return packet.etherType === 'arp' ? ABSENT_FIELD : { value: packet.etherType === 'ip' ? 'ipv4' : 'ipv6', kind: 'name', names: { ipv4: 2, ipv6: 10 }, specific: false };
    if (key === 'l4proto') return packet.l4 ? { value: packet.l4, kind: 'name', names: L4_NUMBERS, specific: packet.l4 === 'icmpv6' } : ABSENT_FIELD;
    if (key === 'iifname' || key === 'iif') return interfaceField(hook, 'in', interfaces);
    if (key === 'oifname' || key === 'oif') return interfaceField(hook, 'out', interfaces);
    return UNKNOWN_FIELD;
  }
  return UNKNOWN_FIELD;
}

/** Interfaces are known only on the hooks where the traffic meets the management interface itself. */
function interfaceField(hook: string | null, direction: 'in' | 'out', interfaces: string[]): FieldValue {
  const known = direction === 'in' ? hook === 'input' || hook === 'prerouting' : hook === 'output' || hook === 'postrouting';
  if (!known) return direction === 'out' && (hook === 'input' || hook === 'prerouting') ? ABSENT_FIELD : UNKNOWN_FIELD;
  return { kind: 'name', names: {}, specific: true, interfaces };
}

function nftCondition(match: Record<string, Json>, interfaces: string[], sets: Map<string, NftSet>, family: string, table: string): Condition {
  return (packet, hook) => {
    // Interface matches are resolved by name only in the families where iif is the management interface.
    const field = nftField(match['left'], packet, family === 'bridge' || family === 'netdev' ? null : hook, interfaces);
    if (field.absent) return NO;
    const op = typeof match['op'] === 'string' ? match['op'] : '==';
    const right = match['right'];
    let contained: boolean | null;
    if (field.interfaces) {
      const names = field.interfaces;
      contained = typeof right === 'string' && !right.startsWith('@') ? names.some((name) => interfaceMatches(right, name)) : anyOf(names.map((name) => nftContains(right, name, 'name', {}, sets, family, table)));
    } else if (field.unknown || field.value === undefined) {
      return MAYBE;
    } else {
      contained = nftContains(right, field.value, field.kind, field.names, sets, family, table);
    }
    if (contained === null) return MAYBE;
    if (op === '==' || op === 'in') return fromBoolean(contained, field.specific);
    if (op === '!=') return fromBoolean(!contained, field.specific);
    return MAYBE;
  };
}

const NEUTRAL_STATEMENTS = new Set(['counter', 'log', 'mangle', 'notrack', 'meta', 'ct', 'set', 'flow', 'comment', 'xt_target']);

function nftText(expr: Json[]): string {
  const value = (v: Json): string => {
    if (typeof v === 'string' || typeof v === 'number') return String(v);
    if (Array.isArray(v)) return `{ ${v.map(value).join(', ')} }`;
    if (isObject(v)) {
      if (Array.isArray(v['set'])) return `{ ${v['set'].map((element) => (Array.isArray(element) ? `${value(element[0])} : ${Object.keys(element[1] as object)[0]}` : value(element))).join(', ')} }`;
      if (Array.isArray(v['range'])) return `${value(v['range'][0])}-${value(v['range'][1])}`;
      if (isObject(v['prefix'])) return `${value(v['prefix']['addr'])}/${value(v['prefix']['len'])}`;
      if (isObject(v['payload'])) return `${value(v['payload']['protocol'])} ${value(v['payload']['field'])}`;
      if (isObject(v['meta'])) return `meta ${value(v['meta']['key'])}`;
      if (isObject(v['ct'])) return `ct ${value(v['ct']['key'])}`;
    }
    return '…';
  };
  return expr
    .map((statement) => {
      if (!isObject(statement)) return '';
      const [kind] = Object.keys(statement);
      const body = kind ? statement[kind] : null;
      if (kind === 'match' && isObject(body)) {
        const op = body['op'] === '==' || body['op'] === 'in' ? '' : ` ${String(body['op'])}`;
        return `${value(body['left'])}${op} ${value(body['right'])}`;
      }
      if (kind === 'jump' || kind === 'goto') return `${kind} ${isObject(body) ? String(body['target']) : ''}`;
      if (kind === 'vmap' && isObject(body)) return `${value(body['key'])} vmap ${value(body['data'])}`;
      if (kind === 'counter') return '';
      return kind ?? '';
    })
    .filter((part) => part !== '')
    .join(' ');
}

function nftVerdict(statement: Record<string, Json>): RuleVerdict | null {
  if ('accept' in statement) return { kind: 'accept' };
  if ('drop' in statement || 'reject' in statement) return { kind: 'drop' };
  if ('return' in statement) return { kind: 'return' };
  if ('continue' in statement || 'queue' in statement) return { kind: 'continue' };
  for (const kind of ['jump', 'goto'] as const) {
    const body = statement[kind];
    if (isObject(body) && typeof body['target'] === 'string') return { kind, target: body['target'] };
  }
  return null;
}

/** Turns `nft -j list ruleset` output into chains the walker understands. */
export function nftChains(ruleset: Json, interfaces: string[]): ChainModel[] {
  const items = isObject(ruleset) && Array.isArray(ruleset['nftables']) ? ruleset['nftables'] : [];
  const sets = new Map<string, NftSet>();
  const chains = new Map<string, ChainModel>();
  for (const item of items) {
    if (!isObject(item)) continue;
    const set = item['set'] ?? item['map'];
    if (isObject(set)) sets.set(`${String(set['family'])} ${String(set['table'])} ${String(set['name'])}`, { elements: Array.isArray(set['elem']) ? set['elem'] : [] });
    const chain = item['chain'];
    if (isObject(chain)) {
      const key = `${String(chain['family'])} ${String(chain['table'])} ${String(chain['name'])}`;
      chains.set(key, {
        source: 'nft',
        label: key,
        family: String(chain['family']),
        table: String(chain['table']),
        name: String(chain['name']),
        hook: typeof chain['hook'] === 'string' ? chain['hook'] : null,
        policy: chain['policy'] === 'drop' ? 'drop' : typeof chain['hook'] === 'string' ? 'accept' : null,
        rules: [],
      });
    }
  }
  for (const item of items) {
    const rule = isObject(item) ? item['rule'] : null;
    if (!isObject(rule)) continue;
    const family = String(rule['family']);
    const table = String(rule['table']);
    const chain = chains.get(`${family} ${table} ${String(rule['chain'])}`);
    if (!chain) continue;
    const expr = Array.isArray(rule['expr']) ? rule['expr'] : [];
    const conditions: Condition[] = [];
    let verdict: RuleVerdict | null = null;
    for (const statement of expr) {
      if (!isObject(statement)) continue;
      const match = statement['match'];
      if (isObject(match)) {
        conditions.push(nftCondition(match, interfaces, sets, family, table));
        continue;
      }
      const vmap = statement['vmap'];
      if (isObject(vmap)) {
        verdict = nftMapVerdict(vmap, interfaces, sets, family, table);
        break;
      }
      const direct = nftVerdict(statement);
      if (direct) {
        verdict = direct;
        break;
      }
      const [kind] = Object.keys(statement);
      // limit, quota, xt matches and the like: the rule may or may not apply.
      if (kind && !NEUTRAL_STATEMENTS.has(kind)) conditions.push(() => MAYBE);
    }
    chain.rules.push({ where: `${family} ${table} ${chain.name} handle ${String(rule['handle'])}`, text: nftText(expr), conditions, verdict });
  }
  return [...chains.values()];
}

function nftMapVerdict(vmap: Record<string, Json>, interfaces: string[], sets: Map<string, NftSet>, family: string, table: string): RuleVerdict {
  const data = vmap['data'];
  const entries: Json[] = isObject(data) && Array.isArray(data['set']) ? data['set'] : typeof data === 'string' && data.startsWith('@') ? (sets.get(`${family} ${table} ${data.slice(1)}`)?.elements ?? []) : [];
  return {
    kind: 'map',
    resolve: (packet, hook) => {
      let maybeDrop: Eval | null = null;
      for (const entry of entries) {
        const pair = Array.isArray(entry) ? entry : isObject(entry) && Array.isArray(entry['elem']) ? entry['elem'] : null;
        if (!pair || pair.length !== 2 || !isObject(pair[1])) continue;
        const verdict = nftVerdict(pair[1]);
        if (!verdict) continue;
        const hit = nftCondition({ op: '==', left: vmap['key'], right: pair[0] }, interfaces, sets, family, table)(packet, hook);
        if (hit.result === 'yes') return { verdict, eval: hit };
        if (hit.result === 'maybe' && verdict.kind === 'drop') maybeDrop = hit;
      }
      return maybeDrop ? { verdict: { kind: 'drop' }, eval: { result: 'maybe', specific: true } } : { verdict: null, eval: NO };
    },
  };
}

// ---- iptables-save, ip6tables-save, arptables-save ----

const HOOK_OF_CHAIN: Record<string, string> = { PREROUTING: 'prerouting', INPUT: 'input', FORWARD: 'forward', OUTPUT: 'output', POSTROUTING: 'postrouting' };

/** Splits a save-format line into arguments, keeping quoted strings whole. */
function saveTokens(line: string): string[] {
  return (line.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []).map((token) => (token.startsWith('"') ? token.slice(1, -1) : token));
}

function portSpecContains(spec: string, port: number): boolean | null {
  const parts = spec.split(',');
  const results = parts.map((part) => {
    const [low, high] = part.split(':');
    const a = toNumber(low ?? '', SERVICES);
    const b = high === undefined ? a : high === '' ? 65535 : toNumber(high, SERVICES);
    return a === null || b === null ? null : port >= a && port <= b;
  });
  return anyOf(results);
}

function cidrContains(spec: string, address: string): boolean | null {
  const [network, length] = spec.split('/');
  if (!network || !isIP(network) || isIP(network) !== isIP(address)) return null;
  const prefix = length === undefined ? (isIP(network) === 4 ? 32 : 128) : Number(length);
  return Number.isInteger(prefix) ? sameSubnet(address, network, prefix) : null;
}

/**
 * Parses iptables-save style output (family "ip", "ip6" or "arp") into chains. Options we
 * do not model make a rule conditional, never silently unconditional.
 */
export function saveFormatChains(text: string, family: 'ip' | 'ip6' | 'arp', interfaces: string[]): ChainModel[] {
  const tool = family === 'arp' ? 'arptables' : family === 'ip6' ? 'ip6tables' : 'iptables';
  const chains = new Map<string, ChainModel>();
  let table = 'filter';
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line.startsWith('*')) {
      table = line.slice(1);
      continue;
    }
    if (line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(/\s+/);
      if (!name) continue;
      const hook = HOOK_OF_CHAIN[name] ?? null;
      chains.set(`${table} ${name}`, { source: tool, label: `${tool} ${table} ${name}`, family, table, name, hook, policy: policy === 'DROP' ? 'drop' : hook ? 'accept' : null, rules: [] });
      continue;
    }
    if (!line.startsWith('-A ')) continue;
    const tokens = saveTokens(line);
    const chainName = tokens[1] ?? '';
    const chain = chains.get(`${table} ${chainName}`);
    if (!chain) continue;
    const conditions: Condition[] = [];
    let verdict: RuleVerdict | null = null;
    let negate = false;
    for (let i = 2; i < tokens.length; i += 1) {
      const token = tokens[i]!;
      if (token === '!') {
        negate = true;
        continue;
      }
      const argument = tokens[i + 1] ?? '';
      const negated = negate;
      negate = false;
      const flip = (evaluation: Eval): Eval => {
        if (!negated || evaluation.result === 'maybe') return evaluation;
        return evaluation.result === 'yes' ? NO : { result: 'yes', specific: evaluation.specific };
      };
      switch (token) {
        case '-j':
        case '--jump':
        case '-g':
        case '--goto': {
          i += 1;
          const target = argument.toUpperCase();
          if (target === 'ACCEPT') verdict = { kind: 'accept' };
          else if (target === 'DROP' || target === 'REJECT') verdict = { kind: 'drop' };
          else if (target === 'RETURN') verdict = { kind: 'return' };
          else if (token === '-j' || token === '--jump') verdict = chains.has(`${table} ${argument}`) ? { kind: 'jump', target: argument } : { kind: 'continue' };
          else verdict = { kind: 'goto', target: argument };
          // Options after the target belong to it (--reject-with ...).
          i = tokens.length;
          break;
        }
        case '-p':
        case '--protocol':
          i += 1;
          conditions.push((packet) => {
            if (packet.etherType === 'arp') return MAYBE;
            const wanted = argument.toLowerCase();
            if (wanted === 'all') return flip(YES);
            const own = packet.l4 === 'icmpv6' ? ['ipv6-icmp', 'icmpv6', '58'] : packet.l4 === 'tcp' ? ['tcp', '6'] : [];
            return flip(fromBoolean(own.includes(wanted), packet.l4 === 'icmpv6'));
          });
          break;
        case '--dport':
        case '--destination-port':
        case '--dports':
        case '--destination-ports':
          i += 1;
          conditions.push((packet) => (packet.l4 === 'tcp' ? flip(fromBoolean(portSpecContains(argument, packet.dport!), true)) : NO));
          break;
        case '-i':
        case '--in-interface':
        case '-o':
        case '--out-interface': {
          i += 1;
          const direction = token === '-i' || token === '--in-interface' ? 'in' : 'out';
          conditions.push((_packet, hook) => {
            const field = interfaceField(hook, direction, interfaces);
            if (field.absent) return NO;
            if (field.unknown) return MAYBE;
            if (argument === 'any' || argument === '*') return flip(YES);
            return flip(fromBoolean(interfaces.some((name) => interfaceMatches(argument, name)), true));
          });
          break;
        }
        case '-d':
        case '--destination':
        case '--dst':
          i += 1;
          conditions.push((packet) => (packet.daddr && packet.l4 === 'tcp' ? flip(fromBoolean(cidrContains(argument, packet.daddr), true)) : MAYBE));
          break;
        case '--opcode':
          i += 1;
          conditions.push((packet) => {
            if (packet.etherType !== 'arp') return NO;
            const op = toNumber(argument, ARP_OPERATIONS);
            return flip(fromBoolean(op === null ? null : op === ARP_OPERATIONS[packet.arpOperation!], true));
          });
          break;
        case '--icmpv6-type':
          i += 1;
          conditions.push((packet) => {
            if (packet.l4 !== 'icmpv6') return NO;
            const wanted = argument.split('/')[0]!.toLowerCase();
            const aliases: Record<string, number> = { 'neighbour-solicitation': 135, 'neighbor-solicitation': 135, 'neighbour-advertisement': 136, 'neighbor-advertisement': 136 };
            const number = aliases[wanted] ?? toNumber(wanted, {});
            return flip(fromBoolean(number === null ? null : number === ICMPV6_TYPES[packet.icmpv6Type!], true));
          });
          break;
        case '-m':
        case '--match':
          // The module's own options follow and are handled (or made conditional) on their own.
          i += 1;
          break;
        case '-c':
          i += 2;
          break;
        default:
          if (token.startsWith('-')) {
            // An option we do not model, with its value if it has one: the rule may not apply.
            conditions.push(() => MAYBE);
            if (argument !== '' && !argument.startsWith('-')) i += 1;
          }
      }
    }
    const handle = chain.rules.length + 1;
    chain.rules.push({ where: `${tool} ${table} ${chainName} rule ${handle}`, text: tokens.slice(2).join(' '), conditions, verdict });
  }
  return [...chains.values()];
}

// ---- running the tools ----

export interface ToolOutput {
  stdout: string;
  /** The command is not installed. */
  missing: boolean;
  error: string | null;
}

export function runTool(command: string, args: string[], timeoutMs = 5000): Promise<ToolOutput> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') {
        resolve({ stdout: '', missing: true, error: null });
        return;
      }
      resolve({ stdout: String(stdout), missing: false, error: error ? String(stderr).trim() || error.message : null });
    });
  });
}

/** iptables-nft writes into nftables, which `nft list ruleset` already shows. */
export function isNftBackend(saveOutput: string): boolean {
  return /^#.*(nft|nf_tables)/m.test(saveOutput);
}

/** One line for a finding, e.g. "arp vipdtest input handle 2 drops ARP (drop)". */
function describe(finding: FirewallFinding): string {
  return `${finding.where} ${finding.certain ? 'drops' : 'may drop'} ${finding.drops} (${finding.rule || 'drop'})`;
}

export function judgeFirewall(input: { findings: FirewallFinding[]; sources: string[]; target: FirewallTarget; unavailable?: string }): CheckResult {
  const name = 'firewall';
  if (input.sources.length === 0) return skip(name, input.unavailable ?? 'nft is not installed, nor iptables-save or arptables-save');
  const what = `${input.target.ipv6 ? 'neighbour discovery' : 'ARP'}${input.target.apiPort !== null ? ` or tcp dport ${input.target.apiPort}` : ''}`;
  const certain = input.findings.filter((finding) => finding.certain);
  const possible = input.findings.filter((finding) => !finding.certain);
  const hint =
    'remove the rule or accept the traffic before it: the VIP needs ARP (IPv6: neighbour discovery) to answer on the segment, ' +
    'and clients need the API port (keepalived\'s vrrp_strict adds such drops)';
  if (certain.length > 0) return check(name, 'fail', [...certain, ...possible].map(describe).join('; '), hint);
  if (possible.length > 0) return check(name, 'warn', possible.map(describe).join('; '), `${hint}; these rules depend on sources, state or limits, so check whether they apply`);
  const apiNote = input.target.apiPort === null ? ' (the API is not configured: its port was not checked)' : '';
  return check(name, 'ok', `no rule in ${input.sources.join(', ')} drops ${what}${apiNote}`);
}

/** Reads the rulesets of this node (its network namespace) and judges them. */
export async function checkFirewall(target: FirewallTarget): Promise<CheckResult> {
  const chains: ChainModel[] = [];
  const sources: string[] = [];
  const problems: string[] = [];
  const nft = await runTool('nft', ['-j', 'list', 'ruleset']);
  if (!nft.missing) {
    if (nft.error) problems.push(`nft: ${nft.error}`);
    else {
      try {
        chains.push(...nftChains(JSON.parse(nft.stdout || '{}') as Json, target.interfaces));
        sources.push('nftables');
      } catch (error) {
        problems.push(`nft printed no JSON: ${(error as Error).message}`);
      }
    }
  }
  const legacy: Array<[string, 'ip' | 'ip6' | 'arp']> = [['iptables-save', 'ip'], ['ip6tables-save', 'ip6'], ['arptables-save', 'arp']];
  for (const [command, family] of legacy) {
    const output = await runTool(command, []);
    if (output.missing) continue;
    if (output.error) {
      problems.push(`${command}: ${output.error}`);
      continue;
    }
    // Rules the nft backend holds were read above already.
    if (isNftBackend(output.stdout) && sources.includes('nftables')) continue;
    chains.push(...saveFormatChains(output.stdout, family, target.interfaces));
    sources.push(command);
  }
  if (sources.length === 0) {
    return skip('firewall', problems.length > 0 ? `could not read the firewall: ${problems.join('; ')}` : 'nft is not installed (nor iptables-save or arptables-save): no ruleset to read');
  }
  return judgeFirewall({ findings: analyzeChains(chains, target), sources, target });
}
