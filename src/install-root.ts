import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

let cached: string | undefined;

/**
 * The folder holding vipd's package.json: the work tree, or /usr/lib/vipd in the package.
 * Found by walking up, because this code runs both as dist/src/<folder>/<file>.js (tests)
 * and as the one-file build dist/src/main.js, at different depths.
 */
export function installRoot(): string {
  if (cached !== undefined) return cached;
  for (let folder = __dirname; ; folder = dirname(folder)) {
    const manifest = join(folder, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'vipd') return (cached = folder);
    if (dirname(folder) === folder) throw new Error(`vipd's package.json not found above ${__dirname}`);
  }
}
