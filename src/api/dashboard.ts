import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { installRoot } from '../install-root';
import type { ApiServer } from './server';

interface Asset {
  body: string;
  type: string;
}

const ASSET_FILES: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

/** The vendored modules the page imports, straight from their installed packages. */
const VENDOR_MODULES: Record<string, () => string> = {
  'preact.mjs': () => require.resolve('preact'),
  'hooks.mjs': () => require.resolve('preact/hooks'),
  'htm.mjs': () => join(dirname(require.resolve('htm')), 'htm.mjs'),
};

/** The assets stay in src/api/dashboard (tsc does not copy them; the package ships that folder). */
export function dashboardDirectory(): string {
  const folder = join(installRoot(), 'src', 'api', 'dashboard');
  if (!existsSync(join(folder, 'index.html'))) throw new Error(`dashboard assets not found in ${folder}`);
  return folder;
}

interface Dashboard {
  html: string;
  contentSecurityPolicy: string;
  assets: Map<string, Asset>;
}

let cached: Dashboard | null = null;

export function loadDashboard(): Dashboard {
  if (cached) return cached;
  const directory = dashboardDirectory();
  const html = readFileSync(join(directory, 'index.html'), 'utf8');
  const assets = new Map<string, Asset>();
  for (const [name, type] of Object.entries(ASSET_FILES)) {
    assets.set(name, { body: readFileSync(join(directory, name), 'utf8'), type });
  }
  for (const [name, locate] of Object.entries(VENDOR_MODULES)) {
    // Their source maps are not shipped with the page.
    const body = readFileSync(locate(), 'utf8').replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, '\n');
    assets.set(`vendor/${name}`, { body, type: 'text/javascript; charset=utf-8' });
  }
  // The import map must be inline; allow exactly it by hash, and no other inline script.
  const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html)?.[1] ?? '';
  const importMapHash = createHash('sha256').update(importMap, 'utf8').digest('base64');
  const contentSecurityPolicy = [
    "default-src 'none'",
    `script-src 'self' 'sha256-${importMapHash}'`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  cached = { html, contentSecurityPolicy, assets };
  return cached;
}

/** The dashboard page and its assets: public, since every datum on it comes from the token-guarded API. */
export function registerDashboard(app: ApiServer): void {
  const dashboard = loadDashboard();
  app.get('/', { config: { access: 'public' } }, async (_request, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', dashboard.contentSecurityPolicy)
      .header('cache-control', 'no-cache')
      .send(dashboard.html),
  );
  app.get<{ Params: { '*': string } }>('/assets/*', { config: { access: 'public' } }, async (request, reply) => {
    const asset = dashboard.assets.get(request.params['*']);
    if (!asset) {
      return reply.code(404).send({ error: 'Not Found', message: `no asset ${request.params['*']}` });
    }
    return reply.header('content-type', asset.type).header('cache-control', 'no-cache').send(asset.body);
  });
}
