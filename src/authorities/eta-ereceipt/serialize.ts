/**
 * ETA eReceipt: the receipt's "document serialization" and its uuid (SHA-256, 64 lowercase hex, of the UTF-8
 * bytes of the serialization, with `header.uuid` "" in its place). The rules are those of the SDK page
 * "Document serialization approach" as ETA's own C# example implements them (Newtonsoft.Json with
 * FloatParseHandling.Decimal and DateParseHandling.None; docs/authorities.md, "eReceipt uuid: how the agent
 * serializes", lists the sources and where other implementations differ):
 * - members in the order written; each name upper-cased (culture-invariant) in double quotes, written raw;
 * - an object is its members; an array is its name, then its name again before each element;
 * - a number as the till wrote it (`10.50`, `0.0`) in double quotes;
 * - a string as JsonConvert.ToString writes its decoded value: in double quotes, with `"` `\` and control
 *   characters escaped (`\"`, `\\`, `\n`, `\u001f`) and U+0085, U+2028, U+2029 as `\u....`; Arabic as is;
 * - true/false as "True"/"False" (.NET's bool text); null adds nothing after its name;
 * - an array element that is not an object or a string adds nothing after the array's name.
 * Refused, because .NET's decimal reading would rewrite them and the uuid could not match: numbers with an
 * exponent, negative zero, and fractions with more significant digits than System.Decimal holds; and a name
 * twice in one object. Pure but for hashing (node:crypto).
 */
import { stringifyVerbatim, type VerbatimEntry, type VerbatimObject, type VerbatimValue } from './verbatim-json.js';

const { createHash } = process.getBuiltinModule('node:crypto');

export class EtaReceiptError extends Error {
  readonly code = 'ERR_ETA_RECEIPT';
  constructor(
    /** Where in the receipt, e.g. `receipt.itemData[0].quantity`. */
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
    this.name = 'EtaReceiptError';
  }
}

/** ETA's serialization of a receipt (or of any document object). */
export function serializeEtaReceipt(receipt: VerbatimValue): string {
  if (receipt.kind !== 'object') throw new EtaReceiptError('receipt', `must be a JSON object, not ${describeKind(receipt)}`);
  const out: string[] = [];
  serializeObject(receipt, 'receipt', out);
  return out.join('');
}

function serializeObject(object: VerbatimObject, path: string, out: string[]): void {
  const seen = new Set<string>();
  for (const { name, value } of object.entries) {
    const at = `${path}.${name}`;
    if (seen.has(name)) throw new EtaReceiptError(at, 'appears twice in the same object: write it once');
    seen.add(name);
    const quotedName = `"${upperInvariant(name)}"`;
    out.push(quotedName);
    if (value.kind === 'object') serializeObject(value, at, out);
    else if (value.kind === 'array') serializeArray(value.items, quotedName, at, out);
    else out.push(simpleValue(value, at));
  }
}

function serializeArray(items: ReadonlyArray<VerbatimValue>, quotedName: string, path: string, out: string[]): void {
  items.forEach((item, i) => {
    out.push(quotedName);
    // As ETA's example: an object element is its members, a string element its value; any other element
    // (number, boolean, null, array) adds nothing. ETA's receipt structure has arrays of objects only.
    if (item.kind === 'object') serializeObject(item, `${path}[${i}]`, out);
    else if (item.kind === 'string') out.push(netJsonString(item.value));
  });
}

function simpleValue(value: VerbatimValue, path: string): string {
  switch (value.kind) {
    case 'string':
      return netJsonString(value.value);
    case 'number':
      return `"${checkedNumber(value.text, path)}"`;
    case 'boolean':
      return value.value ? '"True"' : '"False"';
    default:
      return '';
  }
}

/** System.Decimal holds 28 significant digits for sure (29 for some values). */
const DECIMAL_DIGITS = 28;

function checkedNumber(text: string, path: string): string {
  if (/[eE]/.test(text)) {
    throw new EtaReceiptError(path, `${text} is written with an exponent; ETA reads it as a decimal and rewrites it, so write it as a plain decimal number`);
  }
  if (/^-0(?:\.0+)?$/.test(text)) throw new EtaReceiptError(path, `${text} is a negative zero; write it as ${text.slice(1)}`);
  const digits = text.replace(/^-/, '').replace('.', '').replace(/^0+/, '');
  const fraction = text.split('.')[1] ?? '';
  if (fraction !== '' && (digits.length > DECIMAL_DIGITS || fraction.length > DECIMAL_DIGITS)) {
    throw new EtaReceiptError(path, `${text} has more than ${DECIMAL_DIGITS} significant digits; ETA's decimal cannot hold it exactly: round it`);
  }
  return text;
}

/** .NET's culture-invariant upper case: a character whose upper case is longer (German ß) stays as it is. */
function upperInvariant(name: string): string {
  if (/^[\x20-\x7e]*$/.test(name)) return name.toUpperCase();
  let out = '';
  for (const ch of name) {
    const upper = ch.toUpperCase();
    out += upper.length === ch.length ? upper : ch;
  }
  return out;
}

const NET_SHORT_ESCAPES: Readonly<Record<string, string>> = { '"': '\\"', '\\': '\\\\', '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r' };

/** Newtonsoft's JsonConvert.ToString(string) with its default escaping (StringEscapeHandling.Default). */
export function netJsonString(value: string): string {
  const escaped = value.replace(/["\\\x00-\x1f\u0085\u2028\u2029]/g, (ch) => {
    return NET_SHORT_ESCAPES[ch] ?? `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  return `"${escaped}"`;
}

/** 64 lowercase hex: SHA-256 of the UTF-8 bytes of the receipt's serialization, `header.uuid` "" in its place. */
export function etaReceiptUuid(receipt: VerbatimValue): string {
  const serialized = serializeEtaReceipt(withReceiptHeader(receipt, { uuid: '' }));
  return createHash('sha256').update(serialized, 'utf8').digest('hex');
}

export interface ReceiptHeaderFields {
  readonly uuid?: string;
  readonly previousUUID?: string;
}

/**
 * A copy of the receipt with `header.uuid` / `header.previousUUID` set, each in its place. One the till left
 * out goes where ETA's receipt structure puts it (receiptNumber, uuid, previousUUID; else at the header's end);
 * the uuid is computed over that same layout, so the hash and the stored JSON agree.
 */
export function withReceiptHeader(receipt: VerbatimValue, fields: ReceiptHeaderFields): VerbatimObject {
  const { root, header } = receiptParts(receipt);
  let entries = [...header.entries];
  for (const name of ['uuid', 'previousUUID'] as const) {
    const text = fields[name];
    if (text === undefined) continue;
    const entry: VerbatimEntry = { name, value: { kind: 'string', value: text } };
    const at = entries.findIndex((e) => e.name === name);
    if (at >= 0) entries[at] = entry;
    else entries = insertInPlace(entries, entry);
  }
  return { kind: 'object', entries: root.entries.map((e) => (e.name === 'header' ? { name: 'header', value: { kind: 'object', entries } } : e)) };
}

/** uuid after receiptNumber (else before previousUUID); previousUUID after uuid (else after receiptNumber). */
function insertInPlace(entries: VerbatimEntry[], entry: VerbatimEntry): VerbatimEntry[] {
  const index = (name: string): number => entries.findIndex((e) => e.name === name);
  const after = entry.name === 'uuid' ? [index('receiptNumber')] : [index('uuid'), index('receiptNumber')];
  let at = after.find((i) => i >= 0);
  if (at !== undefined) at += 1;
  else if (entry.name === 'uuid' && index('previousUUID') >= 0) at = index('previousUUID');
  else at = entries.length;
  return [...entries.slice(0, at), entry, ...entries.slice(at)];
}

/** `header.<name>` when it is a string; undefined when absent; an error naming it when it is something else. */
export function receiptHeaderString(receipt: VerbatimValue, name: string): string | undefined {
  const value = receiptParts(receipt).header.entries.find((e) => e.name === name)?.value;
  if (value === undefined) return undefined;
  if (value.kind !== 'string') throw new EtaReceiptError(`receipt.header.${name}`, `must be a string, not ${describeKind(value)}`);
  return value.value;
}

function receiptParts(receipt: VerbatimValue): { root: VerbatimObject; header: VerbatimObject } {
  if (receipt.kind !== 'object') throw new EtaReceiptError('receipt', `must be a JSON object, not ${describeKind(receipt)}`);
  const headers = receipt.entries.filter((e) => e.name === 'header');
  if (headers.length > 1) throw new EtaReceiptError('receipt.header', 'appears twice in the same object: write it once');
  const header = headers[0]?.value;
  if (header?.kind !== 'object') throw new EtaReceiptError('receipt.header', header ? `must be an object, not ${describeKind(header)}` : 'is missing');
  return { root: receipt, header };
}

function describeKind(value: VerbatimValue): string {
  return value.kind === 'array' || value.kind === 'object' ? `an ${value.kind}` : `a ${value.kind}`;
}

export interface CompletedReceipt {
  readonly uuid: string;
  readonly receipt: VerbatimObject;
  /** The receipt's JSON as it is to be stored and submitted: the till's numbers as written, uuid filled in. */
  readonly json: string;
}

/** Sets `header.previousUUID`, computes the uuid over that receipt and sets `header.uuid` to it. */
export function completeEtaReceipt(receipt: VerbatimValue, previousUUID: string): CompletedReceipt {
  const chained = withReceiptHeader(receipt, { previousUUID });
  const uuid = etaReceiptUuid(chained);
  const completed = withReceiptHeader(chained, { uuid });
  return { uuid, receipt: completed, json: stringifyVerbatim(completed) };
}
