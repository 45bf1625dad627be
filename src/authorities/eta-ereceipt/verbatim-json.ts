/**
 * JSON read without losing how its writer wrote the numbers: `10.50` stays the text `10.50`, which a plain
 * JSON.parse turns into 10.5. Strings are decoded (`"\u0041"` is `A`), objects keep their members in the order
 * written (duplicates included: the reader of the tree decides), and the tree written back out keeps every
 * number's text. Pure: no I/O.
 */

export type VerbatimValue = VerbatimObject | VerbatimArray | VerbatimString | VerbatimNumber | VerbatimBoolean | VerbatimNull;
export interface VerbatimEntry {
  readonly name: string;
  readonly value: VerbatimValue;
}
export interface VerbatimObject {
  readonly kind: 'object';
  readonly entries: ReadonlyArray<VerbatimEntry>;
}
export interface VerbatimArray {
  readonly kind: 'array';
  readonly items: ReadonlyArray<VerbatimValue>;
}
export interface VerbatimString {
  readonly kind: 'string';
  readonly value: string;
}
/** `text` is the number exactly as written in the source. */
export interface VerbatimNumber {
  readonly kind: 'number';
  readonly text: string;
}
export interface VerbatimBoolean {
  readonly kind: 'boolean';
  readonly value: boolean;
}
export interface VerbatimNull {
  readonly kind: 'null';
}

/** Deeper nesting is refused (a receipt is 4 levels deep); it keeps the recursion bounded on hostile input. */
export const MAX_JSON_DEPTH = 64;

export class VerbatimJsonError extends Error {
  readonly code = 'ERR_BAD_JSON';
  constructor(
    /** UTF-16 offset into the text. */
    readonly offset: number,
    readonly line: number,
    readonly column: number,
    readonly problem: string,
  ) {
    super(`bad JSON at line ${line}, column ${column}: ${problem}`);
    this.name = 'VerbatimJsonError';
  }
}

interface Cursor {
  readonly text: string;
  pos: number;
  depth: number;
}

export function parseVerbatim(text: string): VerbatimValue {
  const c: Cursor = { text, pos: 0, depth: 0 };
  skipSpace(c);
  const value = parseValue(c);
  skipSpace(c);
  if (c.pos < text.length) fail(c, `unexpected ${found(c)} after the end of the JSON value`);
  return value;
}

function fail(c: Cursor, problem: string, at = c.pos): never {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < at; i++) {
    if (c.text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  throw new VerbatimJsonError(at, line, at - lineStart + 1, problem);
}

function found(c: Cursor): string {
  if (c.pos >= c.text.length) return 'the end of the text';
  const ch = String.fromCodePoint(c.text.codePointAt(c.pos)!);
  return JSON.stringify(ch);
}

function skipSpace(c: Cursor): void {
  for (;;) {
    const ch = c.text.charCodeAt(c.pos);
    if (ch !== 0x20 && ch !== 0x09 && ch !== 0x0a && ch !== 0x0d) return;
    c.pos++;
  }
}

function expect(c: Cursor, ch: string, what: string): void {
  if (c.text[c.pos] !== ch) fail(c, `expected ${what}, found ${found(c)}`);
  c.pos++;
}

function parseValue(c: Cursor): VerbatimValue {
  const ch = c.text[c.pos];
  if (ch === '{') return parseObject(c);
  if (ch === '[') return parseArray(c);
  if (ch === '"') return { kind: 'string', value: parseString(c) };
  if (ch === 't') return literal(c, 'true', { kind: 'boolean', value: true });
  if (ch === 'f') return literal(c, 'false', { kind: 'boolean', value: false });
  if (ch === 'n') return literal(c, 'null', { kind: 'null' });
  if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) return parseNumber(c);
  return fail(c, `expected a value, found ${found(c)}`);
}

function literal(c: Cursor, word: string, value: VerbatimValue): VerbatimValue {
  if (!c.text.startsWith(word, c.pos)) fail(c, `expected ${word}`);
  c.pos += word.length;
  return value;
}

const NUMBER_RUN = /[-+.eE0-9]+/y;
const JSON_NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$/;

function parseNumber(c: Cursor): VerbatimNumber {
  NUMBER_RUN.lastIndex = c.pos;
  const text = NUMBER_RUN.exec(c.text)![0];
  if (!JSON_NUMBER.test(text)) fail(c, `malformed number ${text}`);
  c.pos += text.length;
  return { kind: 'number', text };
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

function parseString(c: Cursor): string {
  const start = c.pos;
  c.pos++;
  let out = '';
  let from = c.pos;
  for (;;) {
    if (c.pos >= c.text.length) fail(c, 'a string that is never closed', start);
    const code = c.text.charCodeAt(c.pos);
    if (code === 0x22) break;
    if (code < 0x20) fail(c, `control character U+${code.toString(16).padStart(4, '0').toUpperCase()} inside a string: escape it`);
    if (code !== 0x5c) {
      c.pos++;
      continue;
    }
    out += c.text.slice(from, c.pos);
    out += parseEscape(c);
    from = c.pos;
  }
  out += c.text.slice(from, c.pos);
  c.pos++;
  return out;
}

/** At a backslash: the character it stands for, the cursor moved past the escape. */
function parseEscape(c: Cursor): string {
  const letter = c.text[c.pos + 1];
  const simple = letter === undefined ? undefined : SIMPLE_ESCAPES[letter];
  if (simple !== undefined) {
    c.pos += 2;
    return simple;
  }
  if (letter === 'u' && /^[0-9a-fA-F]{4}$/.test(c.text.slice(c.pos + 2, c.pos + 6))) {
    const ch = String.fromCharCode(parseInt(c.text.slice(c.pos + 2, c.pos + 6), 16));
    c.pos += 6;
    return ch;
  }
  return fail(c, `invalid escape ${JSON.stringify(c.text.slice(c.pos, c.pos + (letter === 'u' ? 6 : 2)))}`);
}

function enter(c: Cursor): void {
  if (++c.depth > MAX_JSON_DEPTH) fail(c, `nested deeper than ${MAX_JSON_DEPTH} levels`);
  c.pos++;
  skipSpace(c);
}

function parseObject(c: Cursor): VerbatimObject {
  enter(c);
  const entries: VerbatimEntry[] = [];
  if (c.text[c.pos] === '}') {
    c.pos++;
    c.depth--;
    return { kind: 'object', entries };
  }
  for (;;) {
    if (c.text[c.pos] !== '"') fail(c, `expected a property name in double quotes, found ${found(c)}`);
    const name = parseString(c);
    skipSpace(c);
    expect(c, ':', "':' after the property name");
    skipSpace(c);
    entries.push({ name, value: parseValue(c) });
    skipSpace(c);
    if (c.text[c.pos] === '}') break;
    expect(c, ',', "',' or '}' after a property");
    skipSpace(c);
  }
  c.pos++;
  c.depth--;
  return { kind: 'object', entries };
}

function parseArray(c: Cursor): VerbatimArray {
  enter(c);
  const items: VerbatimValue[] = [];
  if (c.text[c.pos] === ']') {
    c.pos++;
    c.depth--;
    return { kind: 'array', items };
  }
  for (;;) {
    items.push(parseValue(c));
    skipSpace(c);
    if (c.text[c.pos] === ']') break;
    expect(c, ',', "',' or ']' after an array element");
    skipSpace(c);
  }
  c.pos++;
  c.depth--;
  return { kind: 'array', items };
}

/** Compact JSON text of the tree: numbers as written, strings escaped as JSON.stringify escapes them. */
export function stringifyVerbatim(value: VerbatimValue): string {
  switch (value.kind) {
    case 'object':
      return `{${value.entries.map((e) => `${JSON.stringify(e.name)}:${stringifyVerbatim(e.value)}`).join(',')}}`;
    case 'array':
      return `[${value.items.map(stringifyVerbatim).join(',')}]`;
    case 'string':
      return JSON.stringify(value.value);
    case 'number':
      return value.text;
    case 'boolean':
      return value.value ? 'true' : 'false';
    case 'null':
      return 'null';
  }
}

/** The value of an object's first member called `name` (undefined: not an object, or no such member). */
export function memberOf(value: VerbatimValue | undefined, name: string): VerbatimValue | undefined {
  if (value?.kind !== 'object') return undefined;
  return value.entries.find((e) => e.name === name)?.value;
}
