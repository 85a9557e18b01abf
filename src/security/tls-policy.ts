/**
 * What the HTTPS API offers. TLS 1.2: ECDHE key exchange with AEAD ciphers only (AES-GCM,
 * ChaCha20-Poly1305): no CBC (padding oracles, Lucky13), no CCM8 (short tag), no ARIA or
 * CAMELLIA, no static RSA key exchange (no forward secrecy). TLS 1.3: OpenSSL's defaults,
 * which are all AEAD. Every secure context the server uses (SNI, uploaded certificates) must
 * carry this list, or it falls back to Node's default one.
 */
export const SERVER_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export const SERVER_MIN_TLS = 'TLSv1.2' as const;
