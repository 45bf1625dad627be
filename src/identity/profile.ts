/**
 * Device profiles: one JSON file per kind of hardware saying where each identity value is read.
 * Validated at load; an invalid profile is refused with the file, the field path and what was expected.
 */
import { z } from 'zod';
import { FIELD_LIMITS, IDENTITY_FIELDS, checkValue, type IdentityField } from './fields.js';
import { readdir, readFile } from '../lib/fs-async.js';
const { join } = process.getBuiltinModule('node:path');

export const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Serial settings a profile may leave out. */
export const SERIAL_DEFAULTS = Object.freeze({
  dataBits: 8 as 5 | 6 | 7 | 8,
  parity: 'none' as 'none' | 'even' | 'odd' | 'mark' | 'space',
  stopBits: 1 as 1 | 1.5 | 2,
  delimiter: '\r\n',
  timeoutMs: 1000,
  retries: 2,
  retryPauseMs: 200,
});

const describe = (text: string) => ({ description: text });

const absolutePath = z
  .string()
  .regex(/^\//, 'expected an absolute path (starting with "/")')
  .refine((p) => !p.split('/').includes('..'), 'expected a path without ".." segments');

function countCaptureGroups(re: RegExp): number {
  return new RegExp(`${re.source}|`, re.flags).exec('')!.length - 1;
}

/** A JavaScript regular expression, as text; `groups` says how many capture groups it must have. */
const regexText = (groups?: 1) =>
  z.string().min(1, 'expected a non-empty regular expression').superRefine((text, ctx) => {
    let re: RegExp;
    try {
      re = new RegExp(text, 'm');
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `expected a valid regular expression: ${(err as Error).message}` });
      return;
    }
    const n = countCaptureGroups(re);
    if (groups !== undefined && n !== groups) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a regular expression with exactly one capture group (the value), found ${n}`,
      });
    }
  });

const dmiField = z
  .string()
  .regex(/^[a-z][a-z0-9_]*$/, 'expected a file name of /sys/class/dmi/id, such as "product_serial"');
const dtProperty = z
  .string()
  .regex(
    /^[A-Za-z0-9,._+@-]+(\/[A-Za-z0-9,._+@-]+)*$/,
    'expected a device-tree property path such as "serial-number" (no leading "/", no "..")',
  )
  .refine((p) => !p.split('/').includes('..'), 'expected a path without ".." segments');

const fileSource = z
  .strictObject({
    source: z.literal('file'),
    path: absolutePath.meta(describe('Absolute path of the file, read under the identity root.')),
    regex: regexText(1)
      .optional()
      .meta(describe('Regular expression (multiline) with one capture group: the value. Without it, the whole content.')),
  })
  .meta(describe('The content of a file.'));

const dmiSource = z
  .strictObject({
    source: z.literal('dmi'),
    field: dmiField.meta(describe('A file of /sys/class/dmi/id: product_serial, board_serial, chassis_serial, product_name...')),
  })
  .meta(describe('A DMI/SMBIOS field. Well-known placeholders ("To Be Filled By O.E.M.", "Default string"...) count as empty.'));

const devicetreeSource = z
  .strictObject({
    source: z.literal('devicetree'),
    property: dtProperty.meta(describe('Property under /proc/device-tree/ (then /sys/firmware/devicetree/base/), e.g. "serial-number".')),
  })
  .meta(describe('A device-tree property; trailing NULs are stripped.'));

const osReleaseSource = z
  .strictObject({
    source: z.literal('os-release'),
    template: z
      .string()
      .regex(/\{[A-Z0-9_]+\}/, 'expected a template naming at least one os-release field, e.g. "{NAME} {VERSION_ID}"')
      .meta(describe('Text with {FIELD} placeholders for os-release fields, e.g. "{NAME} {VERSION_ID}". A missing field makes the source yield nothing.')),
  })
  .meta(describe('Fields of /etc/os-release (else /usr/lib/os-release).'));

const machineIdSource = z
  .strictObject({ source: z.literal('machine-id') })
  .meta(describe('The systemd/D-Bus machine id (32 hex digits); an empty, "uninitialized" or hostname-derived id is refused.'));

const serialSource = z
  .strictObject({
    source: z.literal('serialport'),
    path: z
      .string()
      .min(1)
      .refine((p) => p.startsWith('/') || p.startsWith('${'), 'expected an absolute device path, e.g. "/dev/ttyUSB0" or "${POS_FISCAL_PORT:-/dev/ttyUSB0}"')
      .meta(describe('Device path (not under the identity root). ${VAR} and ${VAR:-default} are replaced from the environment.')),
    baudRate: z.number().int().min(50).max(4_000_000).meta(describe('Line speed, e.g. 9600.')),
    dataBits: z.literal([5, 6, 7, 8]).optional().meta(describe('Default 8.')),
    parity: z.enum(['none', 'even', 'odd', 'mark', 'space']).optional().meta(describe('Default "none".')),
    stopBits: z.literal([1, 1.5, 2]).optional().meta(describe('Default 1.')),
    request: z
      .string()
      .min(1, 'expected a non-empty request')
      .regex(/^[\x00-\xff]*$/, 'expected characters U+0000..U+00FF only (each is sent as one byte)')
      .optional()
      .meta(describe('Bytes sent, as text: JSON escapes give control bytes ("SN?\\r\\n", "\\u0002"). Each character is one byte.')),
    requestHex: z
      .string()
      .regex(/^(?:[0-9a-fA-F]{2})+$/, 'expected an even number of hex digits, e.g. "534e3f0d0a"')
      .optional()
      .meta(describe('Bytes sent, as hex digits; instead of "request".')),
    delimiter: z
      .string()
      .min(1, 'expected a non-empty delimiter')
      .regex(/^[\x00-\xff]*$/, 'expected characters U+0000..U+00FF only')
      .optional()
      .meta(describe('What ends an answer. Default "\\r\\n".')),
    response: regexText(1).meta(describe('Regular expression with one capture group, matched against one answer (without its delimiter).')),
    timeoutMs: z.number().int().min(10).max(60_000).optional().meta(describe('How long one try waits for an answer. Default 1000.')),
    retries: z.number().int().min(0).max(10).optional().meta(describe('Further tries after the first. Default 2.')),
    retryPauseMs: z.number().int().min(0).max(10_000).optional().meta(describe('Pause between tries, jittered +-50%. Default 200.')),
  })
  .superRefine((s, ctx) => {
    if ((s.request === undefined) === (s.requestHex === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['request'], message: 'expected exactly one of "request" and "requestHex"' });
    }
  })
  .meta(describe('A query over a serial line (an expensive source: real I/O, bounded in time).'));

const staticSource = z
  .strictObject({ source: z.literal('static'), value: z.string().meta(describe('The value.')) })
  .meta(describe('A fixed value.'));

const envSource = z
  .strictObject({
    source: z.literal('env'),
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name').meta(describe('Variable name.')),
  })
  .meta(describe("An environment variable of the agent's process."));

const configSource = z
  .strictObject({ source: z.literal('config') })
  .meta(describe("The account's identity.<field> from the agent config."));

const SOURCE_KINDS = ['file', 'dmi', 'devicetree', 'os-release', 'machine-id', 'serialport', 'static', 'env', 'config'] as const;
export type SourceKind = (typeof SOURCE_KINDS)[number];

const sourceSchema = z.discriminatedUnion('source', [
  fileSource,
  dmiSource,
  devicetreeSource,
  osReleaseSource,
  machineIdSource,
  serialSource,
  staticSource,
  envSource,
  configSource,
]).meta({ id: 'source', description: 'Where a value is read: "source" names the kind.' });

const fieldSchema = z.union([sourceSchema, z.array(sourceSchema).min(1, 'expected at least one source').max(10)], {
  error: 'expected a source object ({"source": ...}) or a list of them',
}).meta({ id: 'sources', description: 'A source, or a list tried in order: the first that yields a non-empty value wins.' });

const conditionSchema = z.discriminatedUnion('source', [
  z
    .strictObject({
      source: z.literal('file'),
      path: absolutePath,
      regex: regexText().optional(),
    })
    .meta(describe('Holds when the file (or directory) exists under the identity root and, with "regex", its content matches.')),
  z
    .strictObject({ source: z.literal('dmi'), field: dmiField, regex: regexText().optional() })
    .meta(describe('Holds when the DMI field is non-empty and, with "regex", matches.')),
  z
    .strictObject({ source: z.literal('devicetree'), property: dtProperty, regex: regexText().optional() })
    .meta(describe('Holds when the device-tree property exists and, with "regex", matches (trailing NULs stripped).')),
]).meta({ id: 'condition', description: 'A test of the hardware; "source" names the kind.' });

export const profileSchema = z
  .strictObject({
    $schema: z.string().optional().meta(describe('For editors: "./profile.schema.json".')),
    name: z
      .string()
      .regex(PROFILE_NAME, 'expected a profile name (letters, digits, ".", "_", "-"; at most 64)')
      .meta(describe('Must equal the file name without ".json".')),
    description: z.string().min(1, 'expected a non-empty description').max(500).meta(describe('One line shown by identity --detect.')),
    match: z
      .array(conditionSchema)
      .min(1, 'expected at least one condition')
      .optional()
      .meta(describe('How to recognise the hardware: every condition must hold. Without it the profile is never detected.')),
    values: z
      .strictObject({
        posserial: fieldSchema.optional(),
        pososversion: fieldSchema.optional(),
        posmodelframework: fieldSchema.optional(),
      })
      .meta(describe('Where each device header comes from; a field left out is not sent unless the config sets it.')),
  })
  .superRefine((profile, ctx) => {
    for (const field of IDENTITY_FIELDS) {
      const sources = profile.values[field];
      if (sources === undefined) continue;
      const list = Array.isArray(sources) ? sources : [sources];
      list.forEach((source, i) => {
        if (source.source !== 'static') return;
        const check = checkValue(field, source.value);
        if (!check.ok) {
          ctx.addIssue({
            code: 'custom',
            path: ['values', field, ...(Array.isArray(sources) ? [i] : []), 'value'],
            message: check.empty
              ? 'expected a non-empty value'
              : `expected at most ${FIELD_LIMITS[field]} printable ASCII characters: ${check.message}`,
          });
        }
      });
    }
  })
  .meta({ title: 'pos-token-agent device profile', description: 'Where a kind of hardware keeps the device identity sent to tax authorities.' });

type RawProfile = z.infer<typeof profileSchema>;
export type ValueSource = z.infer<typeof sourceSchema>;
export type SerialSource = z.infer<typeof serialSource>;
export type MatchCondition = z.infer<typeof conditionSchema>;

export interface DeviceProfile {
  name: string;
  description: string;
  /** Where it was loaded from. */
  file: string;
  match: MatchCondition[] | undefined;
  /** Each field's sources, in the order they are tried. */
  values: Partial<Record<IdentityField, ValueSource[]>>;
}

/** The JSON Schema of a profile, for editors (committed as device-profiles/profile.schema.json). */
export function profileJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(profileSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}

export class ProfileError extends Error {
  readonly code = 'ERR_PROFILE';
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`invalid device profile ${file}:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ProfileError';
  }
}

export class ProfileNotFoundError extends Error {
  readonly code = 'ERR_PROFILE_NOT_FOUND';
  constructor(
    readonly profile: string,
    readonly dirs: readonly string[],
    readonly available: readonly string[],
  ) {
    super(
      `no device profile named ${JSON.stringify(profile)} in ${dirs.join(', ') || '(no directories)'}` +
        (available.length ? ` (available: ${available.join(', ')})` : ''),
    );
    this.name = 'ProfileNotFoundError';
  }
}

/** Validates a parsed profile; `file` names it in errors and gives the expected name. */
export function parseProfile(json: unknown, file: string): DeviceProfile {
  const result = profileSchema.safeParse(json, { reportInput: true });
  if (!result.success) throw new ProfileError(file, result.error.issues.flatMap((i) => describeIssue(i, [])));
  const expected = file.replace(/^.*\//, '').replace(/\.json$/, '');
  if (result.data.name !== expected) {
    throw new ProfileError(file, [`name: expected ${JSON.stringify(expected)} (the file name), got ${JSON.stringify(result.data.name)}`]);
  }
  return normalise(result.data, file);
}

function normalise(raw: RawProfile, file: string): DeviceProfile {
  const values: Partial<Record<IdentityField, ValueSource[]>> = {};
  for (const field of IDENTITY_FIELDS) {
    const v = raw.values[field];
    if (v !== undefined) values[field] = Array.isArray(v) ? v : [v];
  }
  return { name: raw.name, description: raw.description, file, match: raw.match, values };
}

type Issue = z.core.$ZodIssue;

function describeIssue(issue: Issue, prefix: PropertyKey[]): string[] {
  const path = [...prefix, ...issue.path];
  const where = path.length ? path.map(String).join('.') : '(top level)';
  switch (issue.code) {
    case 'invalid_union': {
      if ('note' in issue && issue.note === 'No matching discriminator') {
        const options = ((issue as { options?: unknown[] }).options ?? []).map((o) => JSON.stringify(o)).join(', ');
        const input = (issue as { input?: unknown }).input;
        const got =
          typeof input === 'object' && input !== null && 'source' in input
            ? `got ${JSON.stringify((input as { source: unknown }).source)}`
            : typeof input === 'object' && input !== null && !Array.isArray(input)
              ? 'missing'
              : `got ${describeValue(input)}`;
        const at = path.length && path[path.length - 1] === 'source' ? where : `${where}.source`;
        return [`${at}: expected one of ${options} (${got})`];
      }
      // A single source or a list of them: report the branch that fits the input's shape.
      const fitting = issue.errors.filter((errs) => !(errs.length === 1 && errs[0]!.code === 'invalid_type' && errs[0]!.path.length === 0));
      if (fitting.length === 1) return fitting[0]!.flatMap((e) => describeIssue(e, path));
      const input = (issue as { input?: unknown }).input;
      return [`${where}: ${issue.message}${input === undefined ? '' : `, got ${describeValue(input)}`}`];
    }
    case 'unrecognized_keys':
      return [`${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`];
    case 'too_small':
    case 'too_big': {
      if (issue.origin !== 'number' && issue.origin !== 'int') return [`${where}: ${issue.message}`];
      const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      const op = issue.code === 'too_small' ? (issue.inclusive ? '>=' : '>') : issue.inclusive ? '<=' : '<';
      return [`${where}: expected a number ${op} ${String(bound)}, got ${describeValue(issue.input)}`];
    }
    case 'invalid_type':
      if (issue.expected === 'int') return [`${where}: expected an integer, got ${describeValue(issue.input)}`];
      return [`${where}: expected ${issue.expected}${issue.input === undefined ? ' (missing)' : `, got ${describeValue(issue.input)}`}`];
    case 'invalid_value':
      return [`${where}: expected ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}, got ${describeValue(issue.input)}`];
    default:
      return [`${where}: ${issue.message}`];
  }
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

/** Reads and validates one profile file. */
export async function readProfileFile(file: string): Promise<DeviceProfile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ProfileError(file, [`cannot read the file: ${errnoText(err)}`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ProfileError(file, [`not valid JSON: ${(err as Error).message}`]);
  }
  return parseProfile(json, file);
}

/** Profile files by name, the first directory holding a name winning. Missing directories are skipped. */
export async function listProfileFiles(dirs: readonly string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      throw new ProfileError(dir, [`cannot read the profile directory: ${errnoText(err)}`]);
    }
    for (const entry of names.sort()) {
      if (!entry.endsWith('.json') || entry.endsWith('.schema.json')) continue;
      const name = entry.slice(0, -'.json'.length);
      if (PROFILE_NAME.test(name) && !found.has(name)) found.set(name, join(dir, entry));
    }
  }
  return found;
}

/** Finds `<name>.json` in the first directory holding it, and loads it. */
export async function findProfile(dirs: readonly string[], name: string): Promise<DeviceProfile> {
  const files = await listProfileFiles(dirs);
  const file = PROFILE_NAME.test(name) ? files.get(name) : undefined;
  if (file === undefined) throw new ProfileNotFoundError(name, dirs, [...files.keys()].sort());
  return readProfileFile(file);
}

export function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'not found';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return code ?? (err instanceof Error ? err.message : String(err));
}
