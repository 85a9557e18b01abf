import { isIP, isIPv4 } from 'node:net';
import { ipToBytes } from './ip';

/** True when both addresses are of one family and agree on the first prefixLength bits. */
export function sameSubnet(a: string, b: string, prefixLength: number): boolean {
  if (isIP(a) !== isIP(b)) return false;
  const left = ipToBytes(a);
  const right = ipToBytes(b);
  for (let bit = 0; bit < prefixLength; bit += 1) {
    const byte = bit >> 3;
    const mask = 0x80 >> (bit & 7);
    if (((left[byte] ?? 0) & mask) !== ((right[byte] ?? 0) & mask)) return false;
  }
  return true;
}

/** fe80::/10: never a management address. */
export function isLinkLocalV6(address: string): boolean {
  return isIP(address) === 6 && /^fe[89ab]/i.test(address);
}

/**
 * The prefix length of an IPv4 netmask (DHCP option 1, udhcpc's $mask), e.g. 255.255.255.0 -> 24.
 * No mask, a malformed one, a non-contiguous one (RFC 1812 §2.2.5.1 forbids them) or 0.0.0.0
 * gives 32: the address alone, claiming no on-link route the server did not clearly give.
 */
export function prefixLengthOfNetmask(mask: string | null | undefined): number {
  if (mask === null || mask === undefined || !isIPv4(mask)) return 32;
  const bits = ipToBytes(mask).readUInt32BE(0);
  const ones = Math.clz32(~bits);
  // Contiguous: the ones, shifted out, leave nothing behind.
  return ones > 0 && (ones === 32 || bits << ones === 0) ? ones : 32;
}
