/** One Server-Sent Events frame: its `event:` type (default "message") and its `data:` lines joined. */
export interface SseFrame {
  type: string;
  data: string;
}

/**
 * Splits what arrived so far into complete frames and the unfinished rest (WHATWG HTML,
 * "Server-sent events": frames end with a blank line, lines starting with ":" are comments,
 * one optional space follows the colon, and CR, LF or CRLF all end a line).
 */
export function parseSseFrames(buffer: string): { frames: SseFrame[]; rest: string } {
  // A CR at the very end may be the first half of a CRLF split across two chunks.
  const heldBack = buffer.endsWith('\r') ? '\r' : '';
  const text = (heldBack ? buffer.slice(0, -1) : buffer).replace(/\r\n?/g, '\n');
  const frames: SseFrame[] = [];
  let start = 0;
  for (let end = text.indexOf('\n\n', start); end >= 0; end = text.indexOf('\n\n', start)) {
    const block = text.slice(start, end);
    start = end + 2;
    let type = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length > 0) frames.push({ type, data: data.join('\n') });
  }
  return { frames, rest: text.slice(start) + heldBack };
}
