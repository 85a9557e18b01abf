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

/** Control characters and anything past a screenful: a message must stay readable and safe to print. */
function printable(text: string, limit = 60): string {
  // eslint-disable-next-line no-control-regex
  const escaped = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return escaped.length > limit ? `${escaped.slice(0, limit)}…` : escaped;
}

/**
 * A short description of a bad value. Never JSON.stringify the value itself: it may be
 * nested thousands of levels deep (stack overflow) or megabytes long.
 */
function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return `"${printable(value)}"`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `a list of ${value.length}`;
  return typeof value === 'object' ? 'an object' : typeof value;
}

/** Turns a JSON pointer (/vip/address) into the dotted form people write (vip.address). */
function dottedPath(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((part) => printable(part.replace(/~1/g, '/').replace(/~0/g, '~'), 40))
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
    throw new InputError(path, `${problem} (got ${describeValue(first.value)})`);
  }
}
