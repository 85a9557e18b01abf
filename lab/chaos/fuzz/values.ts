/**
 * Hostile values for fuzzing, drawn from a seeded Prng: wrong types, odd strings, bad
 * durations, addresses and MACs, deep nesting. Pure data; nothing here touches the system.
 */
import type { Prng } from '../prng';

const STRINGS = [
  '',
  ' ',
  '\t',
  'a',
  'node-1',
  'Node-1',
  'NODE_1!',
  '-node',
  'node-',
  'node..1',
  '.',
  '..',
  '../../etc/passwd',
  '/etc/shadow',
  'node/../../x',
  'C:\\Windows\\system32',
  '~/.ssh/id_rsa',
  'node\u0000x',
  'node\nx',
  'line1\r\nline2',
  '\u001b[31mred\u001b[0m',
  '\u0007bell',
  '\u202eevil',
  'zero\u200bwidth',
  'e\u0301',
  '\ud83d\udca5',
  '\ud800',
  '節點',
  'ノード',
  'yes',
  'no',
  'on',
  'off',
  'null',
  '~',
  'true',
  'NaN',
  '.inf',
  '-.inf',
  '0x1F',
  '0o17',
  '1e400',
  '-0',
  '%s%s%n',
  '${HOME}',
  '$(reboot)',
  '`id`',
  "'; DROP TABLE nodes; --",
  '<script>alert(1)</script>',
  '{"a":1}',
  '[]',
  '*',
  '&anchor',
  '!!binary aGk=',
  '# comment',
  '@',
  ':',
  '- item',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
];

const DURATIONS = [
  '0s', '0ms', '0m', '1ms', '10ms', '30ms', '40ms', '200ms', '400ms', '1s', '2s', '3s', '10s', '1m',
  '-1s', '-0s', '1.5s', '0.5s', '.5s', '1.s', '1e3s', '2', '2 s', ' 2s', 's', '', 'ms', '1h', '1d', '1S',
  '0001s', '2147483647ms', '2147483648ms', '9007199254740993ms', '99999999999999999999m', '1000000m',
  '0.0001ms', '1.999999999s', 'NaNs', 'Infinitys', '2s2s', '2ms ', '٢s',
];

const IPS = [
  '192.0.2.10', '192.0.2.11', '2001:db8::10', '2001:db8::11', '198.51.100.7', '256.1.1.1', '1.2.3', '1.2.3.4.5',
  '::ffff:192.0.2.10', '192.0.2.010', 'fe80::1%eth0', '0.0.0.0', '255.255.255.255', '::', '::1', '127.0.0.1',
  '[2001:db8::1]', '192.0.2.10/24', ' 192.0.2.10', '192.0.2.10 ', 'localhost', '2001:db8:::1', '2001:db8::g',
  '１９２.０.２.１０', '0x7f.1', '3221225994',
];

const MACS = [
  '02:00:00:09:7f:3f', '01:00:5e:00:00:01', '00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff', '02-00-00-09-7f-3f',
  '0200.0009.7f3f', '02:00:00:09:7f', '02:00:00:09:7f:3f:00', 'zz:00:00:00:00:00', '2:0:0:9:7f:3f', '02:00:00:09:7F:3F',
  '02:00:00:09:7f:3f ', '03:00:00:00:00:01',
];

const URLS = [
  'http://192.0.2.11:2379', 'https://192.0.2.11:2379', 'http://[2001:db8::2]:2379', 'http://127.0.0.1:9', 'ftp://192.0.2.11',
  'http://', 'http:///', 'http://a b:2379', 'http://x:99999', 'http://x:-1', 'unix:///var/run/etcd.sock', 'http://x/../',
  'javascript:alert(1)', '192.0.2.11:2379', '//192.0.2.11:2379', 'http://user:pass@192.0.2.11:2379', 'http://192.0.2.11:2379/v3',
  'HTTP://192.0.2.11:2379', 'http://\u0000:1',
];

export function nastyString(rng: Prng): string {
  const kind = rng.int(0, 9);
  if (kind <= 5) return rng.pick(STRINGS);
  if (kind === 6) return rng.pick(STRINGS).repeat(rng.int(2, 200));
  if (kind === 7) return 'x'.repeat(rng.pick([63, 64, 253, 254, 4096, 65_536, 200_000]));
  if (kind === 8) {
    // Random code points, including controls and surrogates.
    let text = '';
    for (let i = rng.int(1, 40); i > 0; i -= 1) text += String.fromCharCode(rng.pick([rng.int(0, 0x1f), rng.int(0x20, 0x7e), rng.int(0x80, 0xffff)]));
    return text;
  }
  return `${rng.pick(STRINGS)}${rng.pick(STRINGS)}`;
}

export function nastyNumber(rng: Prng): number {
  return rng.pick([0, -1, -0, 1, 0.5, 1.5, 42, 443, 65_535, 65_536, 2 ** 31, 2 ** 53 + 1, 1e308, -1e308, Number.MAX_VALUE, Number.MIN_VALUE, NaN, Infinity, -Infinity]);
}

export function duration(rng: Prng): string {
  return rng.pick(DURATIONS);
}
export function ip(rng: Prng): string {
  return rng.pick(IPS);
}
export function mac(rng: Prng): string {
  return rng.pick(MACS);
}
export function url(rng: Prng): string {
  return rng.pick(URLS);
}

/** Nested arrays or objects `depth` levels deep, built without recursion. */
export function deepValue(depth: number, objects: boolean): unknown {
  let value: unknown = 'bottom';
  for (let i = 0; i < depth; i += 1) value = objects ? { a: value } : [value];
  return value;
}

/** Any JSON-ish value of the wrong kind for most fields. */
export function wrongType(rng: Prng): unknown {
  switch (rng.int(0, 9)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return nastyNumber(rng);
    case 3:
      return [];
    case 4:
      return {};
    case 5:
      return [nastyString(rng), nastyNumber(rng)];
    case 6:
      return { [nastyString(rng)]: nastyString(rng) };
    case 7:
      return deepValue(rng.pick([10, 100, 1000, 10_000]), rng.chance(0.5));
    case 8:
      return rng.chance(0.5) ? { __proto__: { polluted: true } } : JSON.parse('{"__proto__": {"polluted": true}}');
    default:
      return nastyString(rng);
  }
}

/** A value for a field: usually of the field's own flavour, sometimes anything at all. */
export function valueFor(rng: Prng, flavour: 'string' | 'duration' | 'ip' | 'mac' | 'url' | 'number' | 'boolean' | 'name'): unknown {
  if (rng.chance(0.3)) return wrongType(rng);
  switch (flavour) {
    case 'duration':
      return duration(rng);
    case 'ip':
      return ip(rng);
    case 'mac':
      return mac(rng);
    case 'url':
      return url(rng);
    case 'number':
      return nastyNumber(rng);
    case 'boolean':
      return rng.pick([true, false, 'true', 'yes', 1, 0, null]);
    case 'name':
      return rng.pick(['node-1', 'node-2', 'lab', 'a', 'a'.repeat(63), 'a'.repeat(64), nastyString(rng)]);
    default:
      return nastyString(rng);
  }
}

/**
 * JSON text for any value built here, without recursion: JSON.stringify overflows the
 * stack on the deep values, and deep input is exactly what the fuzzers want to send.
 */
export function toJson(value: unknown): string {
  const out: string[] = [];
  const stack: unknown[] = [value];
  const CLOSE = Symbol('close');
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item === 'object' && item !== null && CLOSE in item) {
      out.push((item as { [CLOSE]: string })[CLOSE]);
    } else if (Array.isArray(item)) {
      out.push('[');
      stack.push({ [CLOSE]: ']' });
      for (let i = item.length - 1; i >= 0; i -= 1) {
        stack.push(item[i]);
        if (i > 0) stack.push({ [CLOSE]: ',' });
      }
    } else if (typeof item === 'object' && item !== null) {
      const entries = Object.entries(item);
      out.push('{');
      stack.push({ [CLOSE]: '}' });
      for (let i = entries.length - 1; i >= 0; i -= 1) {
        stack.push(entries[i]![1]);
        stack.push({ [CLOSE]: `${JSON.stringify(entries[i]![0])}:` });
        if (i > 0) stack.push({ [CLOSE]: ',' });
      }
    } else {
      out.push(JSON.stringify(item === undefined ? null : item) ?? 'null');
    }
  }
  return out.join('');
}

/** Shortens a value for a failure message. */
export function preview(value: unknown, max = 300): string {
  let text: string;
  try {
    text = toJson(value);
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;
}
