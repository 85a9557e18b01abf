import { isIP } from 'node:net';
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
