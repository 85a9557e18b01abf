/**
 * kubectl-style JSONPath templates (`kubectl get -o jsonpath=TEMPLATE`).
 *
 * Text outside `{...}` is copied; each `{expression}` prints its matches joined
 * by one space; `{range expr}...{end}` repeats its body once per match. Missing
 * keys print nothing, as kubectl does by default. Results print as client-go's
 * jsonpath does: maps and arrays as Go's json.Marshal (compact, keys sorted),
 * scalars as Go's fmt %v. Wildcards and `..` visit a map in insertion order:
 * Go visits it in random order, so no order is kubectl's.
 */

export class JsonPathError extends Error {
  /** 0-based offset into the template where the problem was found. */
  readonly position: number;
  readonly template: string;

  constructor(reason: string, position: number, template: string) {
    super(`${reason} at position ${position} in jsonpath template ${JSON.stringify(template)}`);
    this.name = 'JsonPathError';
    this.position = position;
    this.template = template;
  }
}

type Scalar = string | number | boolean;
type CompareOp = '==' | '!=' | '<' | '>' | '<=' | '>=';

type Step =
  | { kind: 'field'; name: string }
  | { kind: 'wildcard' }
  | { kind: 'descend' }
  | { kind: 'index'; index: number }
  | { kind: 'slice'; start: number | undefined; end: number | undefined; step: number }
  | { kind: 'union'; branches: Step[] }
  | { kind: 'filter'; left: Operand; op: CompareOp | undefined; right: Operand | undefined; at: number };

type Operand = { kind: 'path'; steps: Step[] } | { kind: 'literal'; value: Scalar };

interface TextNode {
  kind: 'text';
  text: string;
}
interface ExprNode {
  kind: 'expr';
  expr: Operand;
}
interface RangeNode {
  kind: 'range';
  expr: Operand;
  body: TemplateNode[];
}
type TemplateNode = TextNode | ExprNode | RangeNode;

type Action = { kind: 'expr'; expr: Operand } | { kind: 'range'; expr: Operand } | { kind: 'end' };

// Names may also use `(`, `=`, quotes etc. outside filters, as in kubectl.
type Context = 'action' | 'filter';

const SPACE = new Set([' ', '\t', '\n', '\r']);
const NAME_STOP = new Set(['.', ',', '[', ']', '$', '@', '{', '}']);
const FILTER_NAME_STOP = new Set(['(', ')', '=', '!', '<', '>', '"', "'"]);
const OPERATORS: readonly CompareOp[] = ['==', '!=', '<=', '>=', '<', '>'];
const WORD = /[A-Za-z_][A-Za-z0-9_\-/]*/y;
const NUMBER = /[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/y;
const INTEGER = /^[+-]?\d+$/;

const isOpChar = (c: string): boolean => c !== '' && '=!<>'.includes(c);

class Parser {
  private pos = 0;

  constructor(private readonly src: string) {}

  parseTemplate(): TemplateNode[] {
    const root: TemplateNode[] = [];
    let out = root;
    const open: { parent: TemplateNode[]; at: number }[] = [];
    while (this.pos < this.src.length) {
      const brace = this.src.indexOf('{', this.pos);
      if (brace < 0) {
        out.push({ kind: 'text', text: this.src.slice(this.pos) });
        break;
      }
      if (brace > this.pos) out.push({ kind: 'text', text: this.src.slice(this.pos, brace) });
      this.pos = brace + 1;
      const action = this.parseAction(brace);
      if (action.kind === 'range') {
        const node: RangeNode = { kind: 'range', expr: action.expr, body: [] };
        out.push(node);
        open.push({ parent: out, at: brace });
        out = node.body;
      } else if (action.kind === 'end') {
        const frame = open.pop();
        if (frame === undefined) this.fail('{end} without a matching {range}', brace);
        out = frame.parent;
      } else {
        out.push({ kind: 'expr', expr: action.expr });
      }
    }
    const unclosed = open.pop();
    if (unclosed !== undefined) this.fail('{range} without a matching {end}', unclosed.at);
    return root;
  }

  private fail(reason: string, at: number): never {
    throw new JsonPathError(reason, at, this.src);
  }

  private peek(offset = 0): string {
    return this.src.charAt(this.pos + offset);
  }

  private skipSpace(): void {
    while (SPACE.has(this.peek())) this.pos++;
  }

  private peekWord(): string {
    WORD.lastIndex = this.pos;
    return WORD.exec(this.src)?.[0] ?? '';
  }

  private isNameStop(c: string, ctx: Context): boolean {
    return c === '' || SPACE.has(c) || NAME_STOP.has(c) || (ctx === 'filter' && FILTER_NAME_STOP.has(c));
  }

  private parseAction(open: number): Action {
    this.skipSpace();
    const word = this.peekWord();
    if (word === 'end') {
      this.pos += word.length;
      this.expectClose(open);
      return { kind: 'end' };
    }
    if (word === 'range') {
      this.pos += word.length;
      const expr = this.parseOperand('action');
      this.expectClose(open);
      return { kind: 'range', expr };
    }
    const expr = this.parseOperand('action');
    this.expectClose(open);
    return { kind: 'expr', expr };
  }

  private expectClose(open: number): void {
    this.skipSpace();
    const c = this.peek();
    if (c === '}') {
      this.pos++;
      return;
    }
    if (c === '' || c === '{') this.fail('unclosed "{"', open);
    this.fail(`unexpected ${JSON.stringify(c)} in expression`, this.pos);
  }

  private parseOperand(ctx: Context): Operand {
    this.skipSpace();
    const at = this.pos;
    const c = this.peek();
    if (c === '"' || c === "'") return { kind: 'literal', value: this.parseString(ctx === 'filter') };
    if (/[0-9]/.test(c) || ((c === '-' || c === '+') && /[0-9.]/.test(this.peek(1)))) {
      return { kind: 'literal', value: this.parseNumber() };
    }
    const word = this.peekWord();
    if (word === 'true' || word === 'false') {
      this.pos += word.length;
      return { kind: 'literal', value: word === 'true' };
    }
    if (word !== '') this.fail(`unknown identifier ${JSON.stringify(word)} (field names start with ".", e.g. ".${word}")`, at);
    return this.parsePath(ctx);
  }

  private parseNumber(): number {
    const at = this.pos;
    NUMBER.lastIndex = at;
    const m = NUMBER.exec(this.src);
    if (m === null) this.fail('invalid number', at);
    this.pos += m[0].length;
    if (/[A-Za-z0-9_.]/.test(this.peek())) this.fail('invalid number', at);
    return Number(m[0]);
  }

  private parsePath(ctx: Context): Operand {
    const steps: Step[] = [];
    if (this.peek() === '$' || this.peek() === '@') this.pos++;
    for (;;) {
      const c = this.peek();
      if (c === '.' && this.peek(1) === '.') {
        const at = this.pos;
        this.pos += 2;
        if (this.peek() === '.' && this.peek(1) === '.') this.fail('invalid multiple recursive descent', at);
        steps.push({ kind: 'descend' });
        this.parseMember(steps, ctx);
      } else if (c === '.') {
        this.pos++;
        this.parseMember(steps, ctx);
      } else if (c === '[') {
        steps.push(this.parseBracket());
      } else {
        return { kind: 'path', steps };
      }
    }
  }

  // An empty name (`{.}`, `..[0]`) adds no step: it means the current value.
  private parseMember(steps: Step[], ctx: Context): void {
    if (this.peek() === '*' && this.isNameStop(this.peek(1), ctx)) {
      this.pos++;
      steps.push({ kind: 'wildcard' });
      return;
    }
    const name = this.readName(ctx);
    if (name !== '') steps.push({ kind: 'field', name });
  }

  private readName(ctx: Context): string {
    let name = '';
    for (;;) {
      const c = this.peek();
      if (c === '\\') {
        if (this.pos + 1 >= this.src.length) this.fail('dangling "\\"', this.pos);
        name += this.src.charAt(this.pos + 1);
        this.pos += 2;
        continue;
      }
      if (this.isNameStop(c, ctx)) return name;
      name += c;
      this.pos++;
    }
  }

  private parseBracket(): Step {
    const open = this.pos;
    this.pos++;
    this.skipSpace();
    if (this.peek() === '?') {
      if (this.peek(1) !== '(') this.fail('expected "(" after "[?"', this.pos + 1);
      return this.parseFilter(open);
    }
    if (this.peek() === '*') {
      this.pos++;
      this.closeBracket(open);
      return { kind: 'wildcard' };
    }
    const items: Step[] = [];
    for (;;) {
      this.skipSpace();
      items.push(this.parseSubscript(open));
      this.skipSpace();
      const c = this.peek();
      if (c === ',') {
        this.pos++;
        continue;
      }
      if (c === ']') {
        this.pos++;
        break;
      }
      if (c === '' || c === '{' || c === '}') this.fail('unclosed "["', open);
      this.fail(`unexpected ${JSON.stringify(c)} in subscript`, this.pos);
    }
    return items.length === 1 ? items[0] : { kind: 'union', branches: items };
  }

  private closeBracket(open: number): void {
    this.skipSpace();
    const c = this.peek();
    if (c === ']') {
      this.pos++;
      return;
    }
    if (c === '' || c === '{' || c === '}') this.fail('unclosed "["', open);
    this.fail(`unexpected ${JSON.stringify(c)} in subscript`, this.pos);
  }

  private parseSubscript(open: number): Step {
    const at = this.pos;
    const c = this.peek();
    if (c === '"' || c === "'") return { kind: 'field', name: this.parseString(true) };
    let end = this.pos;
    while (end < this.src.length && !',]{}'.includes(this.src.charAt(end))) end++;
    if (end >= this.src.length || this.src.charAt(end) === '{' || this.src.charAt(end) === '}') {
      this.fail('unclosed "["', open);
    }
    const raw = this.src.slice(this.pos, end).trim();
    this.pos = end;
    if (raw === '') this.fail('empty subscript', at);
    const parts = raw.split(':').map((p) => p.trim());
    const invalid = (): never =>
      this.fail(`invalid subscript ${JSON.stringify(raw)} (quote names, e.g. ['${raw}'])`, at);
    if (parts.length > 3) invalid();
    if (parts.length === 1) {
      if (!INTEGER.test(raw)) invalid();
      return { kind: 'index', index: Number(raw) };
    }
    const nums = parts.map((p) => (p === '' ? undefined : INTEGER.test(p) ? Number(p) : invalid()));
    const step = nums[2] ?? 1;
    if (step <= 0) this.fail('slice step must be greater than 0', at);
    return { kind: 'slice', start: nums[0], end: nums[1], step };
  }

  private parseFilter(open: number): Step {
    this.pos += 2;
    const left = this.parseFilterOperand(open);
    this.skipSpace();
    const op = this.parseOperator();
    const right = op === undefined ? undefined : this.parseFilterOperand(open);
    this.skipSpace();
    const c = this.peek();
    if (c !== ')') {
      if (c === '' || c === '{' || c === '}') this.fail('unclosed filter "[?("', open);
      this.fail(`unexpected ${JSON.stringify(c)} in filter`, this.pos);
    }
    this.pos++;
    this.closeBracket(open);
    return { kind: 'filter', left, op, right, at: open };
  }

  private parseFilterOperand(open: number): Operand {
    this.skipSpace();
    const c = this.peek();
    if (c === '' || c === '{' || c === '}') this.fail('unclosed filter "[?("', open);
    if (c === ')' || c === ']' || isOpChar(c)) this.fail('missing operand in filter', this.pos);
    return this.parseOperand('filter');
  }

  private parseOperator(): CompareOp | undefined {
    const at = this.pos;
    let run = '';
    while (isOpChar(this.peek(run.length))) run += this.peek(run.length);
    if (run === '') return undefined;
    const op = OPERATORS.find((o) => o === run);
    if (op === undefined) this.fail(`invalid filter operator ${JSON.stringify(run)}`, at);
    this.pos += run.length;
    return op;
  }

  // Go-style escapes; `lenient` keeps unknown escapes such as `\.` in bracket names.
  private parseString(lenient: boolean): string {
    const start = this.pos;
    const quote = this.peek();
    this.pos++;
    let out = '';
    for (;;) {
      if (this.pos >= this.src.length) this.fail('unterminated string', start);
      const c = this.peek();
      if (c === quote) {
        this.pos++;
        return out;
      }
      if (c !== '\\') {
        out += c;
        this.pos++;
        continue;
      }
      const escAt = this.pos;
      const e = this.peek(1);
      if (e === '') this.fail('unterminated string', start);
      this.pos += 2;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'a': out += '\x07'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\\':
        case '"':
        case "'":
          out += e;
          break;
        case 'x': out += this.codePoint(2, 16, escAt); break;
        case 'u': out += this.codePoint(4, 16, escAt); break;
        case 'U': out += this.codePoint(8, 16, escAt); break;
        default:
          if (/[0-7]/.test(e)) {
            this.pos--;
            out += this.codePoint(3, 8, escAt);
          } else if (lenient) {
            out += e;
          } else {
            this.fail(`invalid escape "\\${e}" in string`, escAt);
          }
      }
    }
  }

  private codePoint(digits: number, radix: 16 | 8, escAt: number): string {
    const text = this.src.slice(this.pos, this.pos + digits);
    const valid = radix === 16 ? /^[0-9a-fA-F]+$/ : /^[0-7]+$/;
    const value = parseInt(text, radix);
    if (text.length !== digits || !valid.test(text) || value > (radix === 8 ? 0xff : 0x10ffff)) {
      this.fail(`invalid escape "${this.src.slice(escAt, this.pos + digits)}" in string`, escAt);
    }
    this.pos += digits;
    return String.fromCodePoint(value);
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function children(v: unknown): unknown[] {
  if (Array.isArray(v)) return v.filter((x) => x !== undefined);
  if (isRecord(v)) return Object.values(v).filter((x) => x !== undefined);
  return [];
}

function orderCompare<T extends number | string>(a: T, b: T, op: CompareOp): boolean {
  switch (op) {
    case '==': return a === b;
    case '!=': return a !== b;
    case '<': return a < b;
    case '>': return a > b;
    case '<=': return a <= b;
    case '>=': return a >= b;
  }
}

// Mismatched types never compare equal and have no order (kubectl errors instead).
function compare(a: unknown, b: unknown, op: CompareOp): boolean {
  if (typeof a === 'number' && typeof b === 'number') return orderCompare(a, b, op);
  if (typeof a === 'string' && typeof b === 'string') return orderCompare(a, b, op);
  if (op === '==') return a === b;
  if (op === '!=') return a !== b;
  return false;
}

// kubectl reads the object as unstructured JSON: integers that fit int64 are int64, the rest float64.
const isInt64 = (n: number): boolean => Number.isInteger(n) && Math.abs(n) < 2 ** 63;

// Go's fmt %v of a float64: shortest digits, exponent form when the exponent is < -4 or >= 6.
function goFloatText(n: number): string {
  if (!Number.isFinite(n)) return Number.isNaN(n) ? 'NaN' : n > 0 ? '+Inf' : '-Inf';
  const [mantissa = '0', exp = '0'] = n.toExponential().split('e');
  const e = Number(exp);
  if (e >= -4 && e < 6) return String(n);
  return `${mantissa}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const GO_ESCAPES: Readonly<Record<string, string>> = {
  '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f',
};

// Go's encoding/json string: HTML-safe (<, >, & as \u00XX), U+2028/U+2029 escaped, invalid UTF-16 as U+FFFD.
function goJsonString(s: string): string {
  const text = s.replace(LONE_SURROGATE, '\uFFFD');
  return `"${text.replace(/["\\\u0000-\u001f<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
}

// Go sorts map keys by their UTF-8 bytes, which is code point order (not UTF-16 order).
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Go's json.Marshal of the decoded object: compact, map keys sorted at every depth. */
function goJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return goJsonString(v);
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'bigint') return v.toString();
  // Go's float encoding follows ES6 number-to-string; integers print as int64.
  if (typeof v === 'number') return isInt64(v) ? String(v) : (JSON.stringify(v) ?? 'null');
  if (Array.isArray(v)) return `[${v.map(goJson).join(',')}]`;
  if (isRecord(v)) {
    // Keys JSON.stringify would drop never reach kubectl.
    const keys = Object.keys(v).filter((k) => v[k] !== undefined && typeof v[k] !== 'function').sort(compareKeys);
    return `{${keys.map((k) => `${goJsonString(k)}:${goJson(v[k])}`).join(',')}}`;
  }
  return 'null';
}

/** One result as kubectl prints it: maps and arrays as JSON, everything else with fmt's %v. */
function formatValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null) return 'null';
  if (typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (typeof v === 'number') return isInt64(v) ? String(v) : goFloatText(v);
  if (typeof v === 'object') return goJson(v);
  return '';
}

class Evaluator {
  constructor(private readonly template: string) {}

  render(nodes: TemplateNode[], current: unknown[]): string {
    let out = '';
    for (const node of nodes) {
      if (node.kind === 'text') {
        out += node.text;
      } else if (node.kind === 'expr') {
        out += this.evaluate(node.expr, current).map(formatValue).join(' ');
      } else {
        for (const item of this.evaluate(node.expr, current)) out += this.render(node.body, [item]);
      }
    }
    return out;
  }

  private evaluate(operand: Operand, current: unknown[]): unknown[] {
    if (operand.kind === 'literal') return [operand.value];
    let values = current;
    for (const step of operand.steps) values = this.apply(step, values);
    return values;
  }

  private apply(step: Step, values: unknown[]): unknown[] {
    switch (step.kind) {
      case 'field':
        return values.flatMap((v) =>
          isRecord(v) && Object.prototype.hasOwnProperty.call(v, step.name) && v[step.name] !== undefined
            ? [v[step.name]]
            : [],
        );
      case 'wildcard':
        return values.flatMap(children);
      case 'descend': {
        const out: unknown[] = [];
        const visit = (v: unknown): void => {
          const kids = children(v);
          if (kids.length === 0) return;
          out.push(v);
          kids.forEach(visit);
        };
        values.forEach(visit);
        return out;
      }
      case 'index':
        return values.flatMap((v) => {
          if (!Array.isArray(v)) return [];
          const i = step.index < 0 ? step.index + v.length : step.index;
          return i >= 0 && i < v.length && v[i] !== undefined ? [v[i]] : [];
        });
      case 'slice':
        return values.flatMap((v) => (Array.isArray(v) ? slice(v, step.start, step.end, step.step) : []));
      case 'union':
        // Branch-major like kubectl: every value for the first branch, then the next.
        return step.branches.flatMap((b) => this.apply(b, values));
      case 'filter':
        return values.flatMap((v) => (Array.isArray(v) ? v.filter((el) => el !== undefined && this.test(step, el)) : []));
    }
  }

  private test(filter: Extract<Step, { kind: 'filter' }>, element: unknown): boolean {
    const lefts = this.evaluate(filter.left, [element]);
    if (filter.op === undefined || filter.right === undefined) return lefts.length > 0;
    const rights = this.evaluate(filter.right, [element]);
    if (lefts.length === 0 || rights.length === 0) return false;
    if (lefts.length > 1 || rights.length > 1) {
      throw new JsonPathError('filter operand matched several values; a filter compares one value', filter.at, this.template);
    }
    return compare(lefts[0], rights[0], filter.op);
  }
}

// Bounds are clamped (kubectl errors on out-of-range slices; a missing element prints nothing here).
function slice(arr: unknown[], start: number | undefined, end: number | undefined, step: number): unknown[] {
  const n = arr.length;
  const norm = (i: number): number => Math.min(n, Math.max(0, i < 0 ? i + n : i));
  const from = start === undefined ? 0 : norm(start);
  const to = end === undefined ? n : norm(end);
  const out: unknown[] = [];
  for (let i = from; i < to; i += step) if (arr[i] !== undefined) out.push(arr[i]);
  return out;
}

/**
 * Renders `template` against `data` the way `kubectl -o jsonpath=TEMPLATE` does.
 * Throws JsonPathError on a malformed template; missing keys print nothing.
 */
export function renderJsonPath(template: string, data: unknown): string {
  const nodes = new Parser(template).parseTemplate();
  return new Evaluator(template).render(nodes, data === undefined ? [] : [data]);
}
