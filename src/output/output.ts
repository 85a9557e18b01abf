import { stringify as toYaml } from 'yaml';
import { InputError } from '../config/schema-check';
import { renderJsonPath } from './jsonpath';

/**
 * Renders an object the way kubectl's -o does: json, yaml, or jsonpath=TEMPLATE.
 * `table` is what the command prints when -o is not given.
 */
export function renderOutput(format: string | undefined, value: unknown, table: () => string): string {
  if (format === undefined || format === '' || format === 'table') return table();
  if (format === 'json') return JSON.stringify(value, null, 2) + '\n';
  if (format === 'yaml') return toYaml(value);
  const jsonpath = /^jsonpath=(.*)$/s.exec(format);
  if (jsonpath) {
    try {
      return renderJsonPath(jsonpath[1] ?? '', value);
    } catch (error) {
      throw new InputError('-o', `bad jsonpath template: ${(error as Error).message}`);
    }
  }
  throw new InputError('-o', `unknown output format "${format}" (use json, yaml or jsonpath=TEMPLATE)`);
}
