import assert from 'node:assert/strict';
import { resolveConfig } from '../../src/config/config';
import { InputError } from '../../src/config/schema-check';

/** Asserts that the config is refused with an InputError naming `field`. */
export function rejects(document: unknown, field: string, pattern: RegExp): void {
  assert.throws(
    () => resolveConfig(document),
    (error: unknown) => {
      assert.ok(error instanceof InputError, String(error));
      assert.equal(error.field, field);
      assert.match(error.message, pattern);
      return true;
    },
  );
}
