/** Files a config names (CA bundles, programs to run), checked once at start so bad ones exit 2. */
import { X509Certificate } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { InputError } from './schema-check';

/** Reads a PEM CA file; throws InputError naming `field` when it cannot be read or holds no certificate. */
export function readCa(path: string, field: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (error) {
    throw new InputError(field, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    new X509Certificate(pem);
  } catch {
    throw new InputError(field, `${path} holds no PEM certificate`);
  }
  return pem;
}

/** Throws InputError naming `field` unless `program` can be run and only root can change it. */
export function checkCommand(program: string, field: string): void {
  try {
    accessSync(program, constants.X_OK);
  } catch (error) {
    throw new InputError(field, `cannot run ${program}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const stats = statSync(program);
  if (!stats.isFile()) throw new InputError(field, `${program} is not a regular file`);
  // The agent runs it as root (hooks on every move, checks every interval): whoever may edit it may run anything there.
  if ((stats.mode & 0o022) !== 0) {
    throw new InputError(field, `${program} is writable by its group or every user (mode ${(stats.mode & 0o777).toString(8).padStart(4, '0')}); run: chmod go-w ${program}`);
  }
}
