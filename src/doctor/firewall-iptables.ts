/** The firewall check's reader for legacy iptables: iptables-save, ip6tables-save and arptables-save output as chains. */
import { isIP } from 'node:net';
import { sameSubnet } from '../holding/codecs/subnet';
import {
  ARP_OPERATIONS, ICMPV6_TYPES, MAYBE, NO, SERVICES, YES,
  anyOf, fromBoolean, interfaceField, interfaceMatches, toNumber,
  type ChainModel, type Condition, type Eval, type RuleVerdict,
} from './firewall-model';

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

/** iptables-nft writes into nftables, which `nft list ruleset` already shows. */
export function isNftBackend(saveOutput: string): boolean {
  return /^#.*(nft|nf_tables)/m.test(saveOutput);
}
