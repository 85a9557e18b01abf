import net from 'node:net';

/** Converts IPv4 dotted-quad or IPv6 text into 4 or 16 network-order bytes. */
export function ipToBytes(ip: string): Buffer {
  if (net.isIPv4(ip)) return ipv4ToBytes(ip);
  // Zone IDs (fe80::1%eth0) pass net.isIPv6 but have no byte form.
  if (net.isIPv6(ip) && !ip.includes('%')) return ipv6ToBytes(ip);
  throw new Error(`invalid IP address: ${JSON.stringify(ip)}`);
}

/** Converts 4 bytes to dotted-quad, or 16 bytes to RFC 5952 canonical IPv6 text. */
export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length === 16) return ipv6ToText(b);
  throw new Error(`IP address must be 4 or 16 bytes, got ${b.length}`);
}

function ipv4ToBytes(ip: string): Buffer {
  return Buffer.from(ip.split('.').map((part) => Number(part)));
}

function ipv6ToBytes(ip: string): Buffer {
  const halves = ip.split('::');
  if (halves.length > 2) throw new Error(`invalid IPv6 address: ${JSON.stringify(ip)}`);
  const head = halves[0] === '' ? [] : halves[0].split(':');
  const tail = halves.length === 2 && halves[1] !== '' ? halves[1].split(':') : [];
  const groups = (parts: string[]): number[] =>
    parts.flatMap((part) => {
      if (part.includes('.')) {
        // Embedded IPv4 tail (RFC 4291 §2.2 form 3) fills the last two groups.
        const v4 = ipv4ToBytes(part);
        return [(v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]];
      }
      return [parseInt(part, 16)];
    });
  const headGroups = groups(head);
  const tailGroups = groups(tail);
  const missing = 8 - headGroups.length - tailGroups.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0) || (halves.length === 2 && missing < 1)) {
    throw new Error(`invalid IPv6 address: ${JSON.stringify(ip)}`);
  }
  const all = [...headGroups, ...new Array<number>(missing).fill(0), ...tailGroups];
  const out = Buffer.alloc(16);
  all.forEach((group, i) => out.writeUInt16BE(group, i * 2));
  return out;
}

function ipv6ToText(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);

  // RFC 5952 §5: IPv4-mapped addresses keep the dotted-quad tail.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }

  // RFC 5952 §4.2: compress the longest run of >= 2 zero groups, the first on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }

  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}
