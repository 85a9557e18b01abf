import { FormatRegistry, type TSchema, type Static } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValueErrorType } from '@sinclair/typebox/errors';
import { isIP } from 'node:net';

// TypeBox ships no string formats; register the ones our schemas use, once.
if (!FormatRegistry.Has('ip')) FormatRegistry.Set('ip', (value) => isIP(value) !== 0);
if (!FormatRegistry.Has('mac')) {
  FormatRegistry.Set('mac', (value) => /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(value));
}

/** Bad input, with the dotted path of the field at fault. */
export class InputError extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(field ? `${field}: ${problem}` : problem);
    this.name = 'InputError';
  }
}

/** Turns a JSON pointer (/vip/address) into the dotted form people write (vip.address). */
function dottedPath(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^\d+$/.test(part) ? `[${part}]` : part))
    .join('.')
    .replace(/\.\[/g, '[');
}

/**
 * A compiled schema: one definition gives both the static type and the runtime check.
 * `check` throws an InputError naming the first bad field, or returns the typed value.
 */
export class Schema<T extends TSchema> {
  private readonly compiled: TypeCheck<T>;

  constructor(readonly schema: T) {
    this.compiled = TypeCompiler.Compile(schema);
  }

  check(value: unknown, context = ''): Static<T> {
    if (this.compiled.Check(value)) return value;
    const errors = [...this.compiled.Errors(value)];
    // A misspelt key also makes the real one "missing": name the misspelling, it explains both.
    const first = errors.find((error) => error.type === ValueErrorType.ObjectAdditionalProperties) ?? errors[0];
    if (!first) throw new InputError(context, 'is invalid');
    const path = [context, dottedPath(first.path)].filter(Boolean).join('.');
    if (first.type === ValueErrorType.ObjectAdditionalProperties) {
      // TypeBox's path already ends at the unknown key; list what is allowed beside it.
      const allowed = Object.keys((first.schema as { properties?: object }).properties ?? {});
      throw new InputError(path, `unknown field (allowed here: ${allowed.join(', ')})`);
    }
    if (first.type === ValueErrorType.ObjectRequiredProperty) {
      throw new InputError(path, 'is required');
    }
    const description = (first.schema as { description?: string }).description;
    const problem = description ? `must be ${description}` : first.message.toLowerCase();
    throw new InputError(path, `${problem} (got ${JSON.stringify(first.value) ?? 'nothing'})`);
  }
}
