/** The firewall check's reader for nftables: `nft -j list ruleset` as chains for the walk in firewall-model.ts. */
import { isIP } from 'node:net';
import { ipToBytes } from '../holding/codecs/ip';
import { sameSubnet } from '../holding/codecs/subnet';
import {
  ABSENT_FIELD, ARP_OPERATIONS, ETHER_TYPES, ICMPV6_TYPES, L4_NUMBERS, MAYBE, NO, SERVICES, UNKNOWN_FIELD,
  anyOf, fromBoolean, interfaceField, interfaceMatches, toNumber,
  type ChainModel, type Condition, type Eval, type FieldValue, type ModelPacket, type RuleVerdict,
} from './firewall-model';

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
