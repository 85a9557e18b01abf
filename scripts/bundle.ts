/**
 * The one-file build of the CLI (issue 12): dist/src/main.js (tsc's output) and every module
 * it can reach, vipd's and its dependencies', in dist/vipd.js. That is the program the
 * package, the systemd unit and the lab run. Loading ~1,500 small files was most of
 * `vipd run`'s start (resolving, reading and compiling each one); one file cuts it to a
 * third. Modules stay lazy: esbuild runs a module's body on its first require, as Node does.
 * dist/src stays module by module for the tests, which load parts of it in process.
 */
import { buildSync } from 'esbuild';
import { join } from 'node:path';

const DIST = join(__dirname, '..');

buildSync({
  entryPoints: [join(DIST, 'src', 'main.js')],
  outfile: join(DIST, 'vipd.js'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // etcd3 reads its .proto files beside its own code, netlink loads a native addon beside its own: both stay in node_modules.
  external: ['etcd3', 'netlink'],
  // The dashboard's vendored modules are found with require.resolve at run time, on purpose.
  logOverride: { 'require-resolve-not-external': 'silent' },
  logLevel: 'warning',
});
