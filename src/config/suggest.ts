/**
 * "Did you mean": the keys a zod schema knows at a path, and the one closest to a misspelled key.
 * Generic over the schema (objects, records, arrays, unions, optional/default/pipe wrappers), so it keeps
 * working whatever shape the account schema takes.
 */
import type { z } from 'zod';

type Schema = z.core.$ZodType;

interface Def {
  type: string;
  shape?: Record<string, Schema>;
  catchall?: Schema;
  valueType?: Schema;
  element?: Schema;
  items?: Schema[];
  rest?: Schema | null;
  innerType?: Schema;
  in?: Schema;
  left?: Schema;
  right?: Schema;
  options?: Schema[];
  discriminator?: string;
  getter?: () => Schema;
}

const def = (schema: Schema): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/**
 * The schemas a value may be checked against, wrappers removed and unions spread (bounded against cycles).
 * `input`, the value itself where known, picks the branch of a discriminated union.
 */
function unwrap(schema: Schema, input?: unknown, depth = 0): Schema[] {
  if (depth > 32) return [];
  const d = def(schema);
  const inner = (s: Schema | undefined): Schema[] => (s ? unwrap(s, input, depth + 1) : []);
  switch (d.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'catch':
    case 'readonly':
    case 'nonoptional':
    case 'success':
      return inner(d.innerType);
    case 'pipe':
      return inner(d.in);
    case 'lazy':
      return inner(d.getter?.());
    case 'union': {
      const options = d.options ?? [];
      const chosen = options.filter((o) => chosenBranch(o, d.discriminator, input));
      return (chosen.length ? chosen : options).flatMap(inner);
    }
    case 'intersection':
      return [...inner(d.left), ...inner(d.right)];
    default:
      return [schema];
  }
}

/** What stands under `segment` of a value checked against `schema`. */
function child(schema: Schema, segment: PropertyKey): Schema[] {
  const d = def(schema);
  switch (d.type) {
    case 'object': {
      const known = typeof segment === 'string' ? d.shape?.[segment] : undefined;
      if (known) return [known];
      return d.catchall && def(d.catchall).type !== 'never' ? [d.catchall] : [];
    }
    case 'record':
      return d.valueType ? [d.valueType] : [];
    case 'array':
      return d.element ? [d.element] : [];
    case 'tuple': {
      const i = Number(segment);
      return [d.items?.[i] ?? d.rest ?? undefined].filter((s): s is Schema => s !== undefined);
    }
    default:
      return [];
  }
}

/** Whether an option of a discriminated union is the branch `input` chose (every option, for a plain union). */
function chosenBranch(option: Schema, discriminator: string | undefined, input: unknown): boolean {
  if (discriminator === undefined || typeof input !== 'object' || input === null) return true;
  const value = (input as Record<string, unknown>)[discriminator];
  const field = def(option).shape?.[discriminator];
  const values = field ? (field as unknown as { _zod: { values?: Set<unknown> } })._zod.values : undefined;
  return values === undefined || values.has(value);
}

/**
 * The keys the object (or objects, under a union) at `path` of `schema` knows, in schema order. `input`, the
 * object found there, picks the branch of a discriminated union.
 */
export function knownKeysAt(schema: Schema, path: readonly PropertyKey[], input?: unknown): string[] {
  let here: Schema[] = [schema];
  for (const segment of path) here = here.flatMap((s) => unwrap(s)).flatMap((s) => child(s, segment));
  const keys: string[] = [];
  for (const s of here.flatMap((s) => unwrap(s, input))) {
    if (def(s).type !== 'object') continue;
    for (const key of Object.keys(def(s).shape ?? {})) if (!keys.includes(key)) keys.push(key);
  }
  return keys;
}

/**
 * Optimal string alignment distance (Damerau-Levenshtein where no substring is edited twice): insertions,
 * deletions, substitutions and swaps of two neighbours each cost 1.
 */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[rows - 1]![cols - 1]!;
}

/**
 * The known key `key` was most likely meant to be, or undefined when none is close: equal but for case, else
 * at most 2 edits and at most half the key's length (so a short key does not match anything). Keys already
 * present in the input are not suggested; ties go to the one first in `known`.
 */
export function closestKey(key: string, known: readonly string[], present: readonly string[] = []): string | undefined {
  const candidates = known.filter((k) => k !== key && !present.includes(k));
  const sameButCase = candidates.find((k) => k.toLowerCase() === key.toLowerCase());
  if (sameButCase) return sameButCase;
  let best: string | undefined;
  let bestDistance = Math.min(2, Math.floor(key.length / 2)) + 1;
  for (const k of candidates) {
    const distance = editDistance(key.toLowerCase(), k.toLowerCase());
    if (distance < bestDistance) {
      best = k;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * The key of the schema at `path` that the unknown `key` was most likely meant to be. `input` is the object
 * at `path` (zod's issue input, with `reportInput`): its keys are not suggested, and it picks the branch of a
 * discriminated union.
 */
export function suggestKey(schema: Schema, path: readonly PropertyKey[], key: string, input?: unknown): string | undefined {
  const present = typeof input === 'object' && input !== null && !Array.isArray(input) ? Object.keys(input) : [];
  return closestKey(key, knownKeysAt(schema, path, input), present);
}
