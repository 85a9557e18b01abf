const MAC_PATTERN = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;

/** Parses "aa:bb:cc:dd:ee:ff" (any case) into 6 bytes. */
export function parseMac(text: string): Buffer {
  if (typeof text !== 'string' || !MAC_PATTERN.test(text)) {
    throw new Error(`invalid MAC address: ${JSON.stringify(text)}`);
  }
  return Buffer.from(text.replace(/:/g, ''), 'hex');
}

/** Formats 6 bytes as lowercase "aa:bb:cc:dd:ee:ff". */
export function formatMac(bytes: Uint8Array): string {
  if (bytes.length !== 6) {
    throw new Error(`MAC address must be 6 bytes, got ${bytes.length}`);
  }
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}
