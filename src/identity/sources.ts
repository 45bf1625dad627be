/**
 * The cheap sources: files, DMI, device tree, os-release, machine id, static, env and config.
 * Every file is read under the identity root ("/" on a box, a fixture tree in tests).
 * Each read returns an outcome, never throws: a value, or why there is none.
 */
import type { AccountConfig } from '../config/index.js';
import type { IdentityField } from './fields.js';
import { errnoText, type MatchCondition, type ValueSource } from './profile.js';
import { readFileCapped, stat } from '../lib/fs-async.js';
const { join } = process.getBuiltinModule('node:path');

export type SourceOutcome = { ok: true; value: string } | { ok: false; reason: string };

export interface SourceContext {
  root: string;
  env: NodeJS.ProcessEnv;
  account: AccountConfig;
  machineId: () => Promise<string>;
  hostname: () => string;
}

/** Files read by a source are small; anything past this is ignored. */
const MAX_FILE_BYTES = 64 * 1024;

export const DMI_DIR = '/sys/class/dmi/id';
export const DEVICETREE_DIRS = ['/proc/device-tree', '/sys/firmware/devicetree/base'] as const;
export const OS_RELEASE_FILES = ['/etc/os-release', '/usr/lib/os-release'] as const;

/**
 * DMI values firmware vendors leave in place of a real serial. They count as empty,
 * so a list of sources falls through to the next one. Compared case-insensitively.
 */
const DMI_PLACEHOLDERS = new Set(
  [
    'to be filled by o.e.m.', 'to be filled by oem', 'default string', 'system serial number', 'base board serial number',
    'chassis serial number', 'serial number', 'not specified', 'not applicable', 'not available', 'none', 'n/a', 'na',
    'unknown', 'empty', 'oem', 'o.e.m.', '0123456789', '123456789', '1234567890', 'xxxxxxxxxx', 'invalid',
  ],
);

export function isDmiPlaceholder(value: string): boolean {
  const v = value.trim().toLowerCase();
  return DMI_PLACEHOLDERS.has(v) || /^(.)\1*$/.test(v);
}

/** Where an absolute path lies under the identity root. */
export function underRoot(root: string, path: string): string {
  return root === '/' ? path : join(root, path);
}

/** Reads at most MAX_FILE_BYTES of a file as text. */
export function readSmallFile(path: string): Promise<string> {
  return readFileCapped(path, MAX_FILE_BYTES);
}

async function readUnder(root: string, path: string): Promise<SourceOutcome> {
  try {
    return { ok: true, value: await readSmallFile(underRoot(root, path)) };
  } catch (err) {
    return { ok: false, reason: `cannot read ${path}: ${errnoText(err)}` };
  }
}

function capture(text: string, regex: string): string | undefined {
  const m = new RegExp(regex, 'm').exec(text);
  return m?.[1];
}

async function readDmi(root: string, field: string): Promise<SourceOutcome> {
  const path = `${DMI_DIR}/${field}`;
  const read = await readUnder(root, path);
  if (!read.ok) {
    return read.reason.endsWith('permission denied')
      ? { ok: false, reason: `${read.reason} (DMI serials are readable by root only)` }
      : read;
  }
  const value = read.value.trim();
  if (value !== '' && isDmiPlaceholder(value)) return { ok: false, reason: `holds the placeholder ${JSON.stringify(value)}` };
  return { ok: true, value };
}

async function readDevicetree(root: string, property: string): Promise<SourceOutcome> {
  const reasons: string[] = [];
  for (const dir of DEVICETREE_DIRS) {
    const read = await readUnder(root, `${dir}/${property}`);
    if (read.ok) return { ok: true, value: read.value.replace(/\0+$/, '') };
    reasons.push(read.reason);
  }
  return { ok: false, reason: reasons.join('; ') };
}

/** Parses os-release (KEY=value lines, values optionally quoted, shell-style escapes in double quotes). */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*?)\s*$/.exec(line);
    if (!m) continue;
    let value = m[2]!;
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      value = value.slice(1, -1).replace(/\\([\\$"`])/g, '$1');
    } else if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) {
      value = value.slice(1, -1);
    }
    out[m[1]!] = value;
  }
  return out;
}

async function readOsRelease(root: string, template: string): Promise<SourceOutcome> {
  const reasons: string[] = [];
  for (const file of OS_RELEASE_FILES) {
    const read = await readUnder(root, file);
    if (!read.ok) {
      reasons.push(read.reason);
      continue;
    }
    const fields = parseOsRelease(read.value);
    const missing: string[] = [];
    const value = template.replace(/\{([A-Z0-9_]+)\}/g, (_, key: string) => {
      const v = fields[key];
      if (v === undefined || v.trim() === '') missing.push(key);
      return v ?? '';
    });
    if (missing.length) return { ok: false, reason: `${file} has no ${missing.join(', ')}` };
    return { ok: true, value };
  }
  return { ok: false, reason: reasons.join('; ') };
}

const MACHINE_ID_FORMAT = /^[0-9a-f]{32}$|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Checks a machine id as node-machine-id returns it (lowercased, whitespace removed). On Linux it
 * falls back to the output of `hostname` when neither /var/lib/dbus/machine-id nor /etc/machine-id
 * is readable; such an id is refused, as are an empty and an "uninitialized" one (first boot).
 */
export function checkMachineId(raw: string, hostname: string): SourceOutcome {
  const id = raw.trim().toLowerCase();
  if (id === '') return { ok: false, reason: 'the machine id is empty' };
  if (id === 'uninitialized') return { ok: false, reason: 'the machine id is "uninitialized" (not yet committed on first boot)' };
  const host = hostname.toLowerCase().replace(/\s+/g, '');
  if (host !== '' && id === host) {
    return { ok: false, reason: 'no machine id file: the value is the hostname (node-machine-id falls back to it)' };
  }
  if (!MACHINE_ID_FORMAT.test(id)) {
    return { ok: false, reason: `the machine id ${JSON.stringify(id.slice(0, 40))} is not 32 hex digits (a hostname fallback?)` };
  }
  return { ok: true, value: id };
}

/** Reads one cheap source. Serial sources are read elsewhere (see serial.ts). */
export async function readCheapSource(
  source: Exclude<ValueSource, { source: 'serialport' }>,
  field: IdentityField,
  ctx: SourceContext,
): Promise<SourceOutcome> {
  switch (source.source) {
    case 'file': {
      const read = await readUnder(ctx.root, source.path);
      if (!read.ok || source.regex === undefined) return read;
      const value = capture(read.value, source.regex);
      return value === undefined ? { ok: false, reason: `${source.path} does not match /${source.regex}/` } : { ok: true, value };
    }
    case 'dmi':
      return readDmi(ctx.root, source.field);
    case 'devicetree':
      return readDevicetree(ctx.root, source.property);
    case 'os-release':
      return readOsRelease(ctx.root, source.template);
    case 'machine-id': {
      let raw: string;
      try {
        raw = await ctx.machineId();
      } catch (err) {
        return { ok: false, reason: `cannot read the machine id: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` };
      }
      return checkMachineId(raw, ctx.hostname());
    }
    case 'static':
      return { ok: true, value: source.value };
    case 'env': {
      const value = ctx.env[source.name];
      return value === undefined ? { ok: false, reason: `${source.name} is not set` } : { ok: true, value };
    }
    case 'config': {
      const value = ctx.account.identity[field];
      return value === undefined
        ? { ok: false, reason: `accounts.${ctx.account.name}.identity.${field} is not set in the config` }
        : { ok: true, value };
    }
  }
}

/** A short name for a source, shown next to the value it gave. */
export function describeSource(source: ValueSource, field: IdentityField, env: NodeJS.ProcessEnv): string {
  switch (source.source) {
    case 'file':
      return `file ${source.path}`;
    case 'dmi':
      return `dmi ${source.field}`;
    case 'devicetree':
      return `devicetree ${source.property}`;
    case 'os-release':
      return `os-release ${source.template}`;
    case 'machine-id':
      return 'machine-id';
    case 'serialport': {
      const path = expandPath(source.path, env);
      return `serialport ${path.ok ? path.path : source.path}`;
    }
    case 'static':
      return 'static';
    case 'env':
      return `env ${source.name}`;
    case 'config':
      return `config identity.${field}`;
  }
}

/** Expands ${VAR} and ${VAR:-default} in a serial path; the result must be absolute. */
export function expandPath(path: string, env: NodeJS.ProcessEnv): { ok: true; path: string } | { ok: false; reason: string } {
  const unset: string[] = [];
  const out = path.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_, name: string, fallback: string | undefined) => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (fallback !== undefined) return fallback;
    unset.push(name);
    return '';
  });
  if (unset.length) return { ok: false, reason: `${unset.join(', ')} is not set (used in the port path ${path})` };
  if (!out.startsWith('/')) return { ok: false, reason: `the port path ${JSON.stringify(out)} is not absolute` };
  return { ok: true, path: out };
}

/** Whether a detection condition holds on this box. */
export async function conditionHolds(condition: MatchCondition, root: string): Promise<boolean> {
  let content: string | undefined;
  switch (condition.source) {
    case 'file': {
      if (condition.regex === undefined) {
        return stat(underRoot(root, condition.path)).then(
          () => true,
          () => false,
        );
      }
      const read = await readUnder(root, condition.path);
      content = read.ok ? read.value : undefined;
      break;
    }
    case 'dmi': {
      const read = await readUnder(root, `${DMI_DIR}/${condition.field}`);
      content = read.ok && read.value.trim() !== '' ? read.value.trim() : undefined;
      break;
    }
    case 'devicetree': {
      const read = await readDevicetree(root, condition.property);
      content = read.ok ? read.value : undefined;
      break;
    }
  }
  if (content === undefined) return false;
  return condition.regex === undefined || new RegExp(condition.regex, 'm').test(content);
}
