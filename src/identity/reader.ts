/**
 * The identity reader: finds an account's device profile, reads each field's sources in order
 * and reports every value with where it came from, or why a field has none.
 */
import type { AccountConfig } from '../config/index.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { silentLogger, type Logger } from '../lib/log.js';
import { checkValue, IDENTITY_FIELDS, type IdentityField } from './fields.js';
import {
  findProfile,
  listProfileFiles,
  ProfileError,
  readProfileFile,
  type DeviceProfile,
  type SourceKind,
  type ValueSource,
} from './profile.js';
import { processPortLocks, readSerialSource, type PortLocks } from './serial.js';
import { conditionHolds, describeSource, readCheapSource, type SourceContext, type SourceOutcome } from './sources.js';
import { readFile } from '../lib/fs-async.js';
const { hostname: osHostname } = process.getBuiltinModule('node:os');

export interface IdentityValue {
  value: string;
  /** Where it came from, e.g. "dmi product_serial", "serialport /dev/ttyUSB0", "config identity.posserial". */
  source: string;
}

export interface IdentityReading {
  /** The profile read, or null for an account without one (config values only). */
  profile: string | null;
  values: Partial<Record<IdentityField, IdentityValue>>;
  /** Why a field that has sources yielded nothing (or yielded a value that cannot be sent). */
  errors: Partial<Record<IdentityField, string>>;
  /** Fields left unread because their next source is expensive and the read was cheapOnly. */
  skipped: IdentityField[];
}

export interface ReadOptions {
  /** Read no expensive source (serialport); their fields are reported in `skipped`. */
  cheapOnly?: boolean;
  /** Read with this profile instead of the account's deviceProfile. */
  profile?: string;
  /**
   * Read every field from the profile, also those the account's `identity` sets (which a login would send
   * instead): a preview of what the profile reads. The profile's `config` sources still read `identity`.
   */
  profileOnly?: boolean;
}

export interface DetectedProfile {
  profile: string;
  description: string;
  /** How many match conditions held: the higher, the more specific. */
  conditions: number;
}

export interface DetectResult {
  /** Profiles whose every condition holds, most specific first. */
  matches: DetectedProfile[];
  /** Profile files that could not be loaded, so were not considered. */
  invalid: ProfileError[];
}

export interface IdentityReader {
  read(account: AccountConfig, options?: ReadOptions): Promise<IdentityReading>;
  detect(): Promise<DetectResult>;
  /** Throws ProfileError, or ProfileNotFoundError naming the directories searched. */
  loadProfile(name: string): Promise<DeviceProfile>;
}

export interface IdentityReaderOptions {
  /** Where profiles are looked up, in order; the first holding `<name>.json` wins. */
  profileDirs: readonly string[];
  /** Prefix of every file a source reads; default "/". Serial port paths are not prefixed. */
  root?: string;
  env?: NodeJS.ProcessEnv;
  /** The machine id in node-machine-id's original form; default machineId(true). */
  machineId?: () => Promise<string>;
  hostname?: () => string;
  log?: Logger;
  clock?: Clock;
  /** In [0, 1): jitter of the pause between serial tries. */
  random?: () => number;
  /** Per-port locks; default the process-wide ones. */
  portLocks?: PortLocks;
}

const EXPENSIVE: ReadonlySet<SourceKind> = new Set(['serialport']);

/** Whether reading a source costs real I/O time (a serial query) rather than a file read. */
export function isExpensive(source: ValueSource): boolean {
  return EXPENSIVE.has(source.source);
}

/**
 * node-machine-id's machineId(true) without its shell (`cat /var/lib/dbus/machine-id /etc/machine-id | head -n 1`,
 * ~15 ms and a fork at every start): the same files in the same order, first line. Its hostname fallback is
 * refused by checkMachineId anyway, so a missing file is an error here.
 */
export const defaultMachineId = async (): Promise<string> => {
  for (const path of ['/var/lib/dbus/machine-id', '/etc/machine-id']) {
    try {
      const line = (await readFile(path, 'utf8')).split('\n', 1)[0]!.trim();
      if (line !== '') return line;
    } catch {
      /* the next one */
    }
  }
  throw new Error('neither /var/lib/dbus/machine-id nor /etc/machine-id can be read');
};

export function createIdentityReader(options: IdentityReaderOptions): IdentityReader {
  const root = options.root ?? '/';
  const env = options.env ?? process.env;
  const log = options.log ?? silentLogger;
  const machineId = options.machineId ?? defaultMachineId;
  const hostname = options.hostname ?? osHostname;
  const serialDeps = {
    clock: options.clock ?? systemClock,
    random: options.random ?? Math.random,
    log,
    locks: options.portLocks ?? processPortLocks,
  };
  const loadProfile = (name: string): Promise<DeviceProfile> => findProfile(options.profileDirs, name);

  async function readSource(source: ValueSource, field: IdentityField, account: AccountConfig): Promise<SourceOutcome> {
    if (source.source === 'serialport') return readSerialSource(source, env, serialDeps);
    const ctx: SourceContext = { root, env, account, machineId, hostname };
    return readCheapSource(source, field, ctx);
  }

  return {
    loadProfile,

    async read(account, readOptions = {}) {
      const name = readOptions.profile ?? account.deviceProfile;
      const reading: IdentityReading = { profile: name ?? null, values: {}, errors: {}, skipped: [] };
      const profile = name === undefined ? undefined : await loadProfile(name);
      for (const field of IDENTITY_FIELDS) {
        const fromConfig = account.identity[field];
        if (fromConfig !== undefined && fromConfig !== '' && !readOptions.profileOnly) {
          // Config values override the profile's (they were checked when the config was loaded).
          reading.values[field] = { value: fromConfig, source: `config identity.${field}` };
          continue;
        }
        const sources = profile?.values[field];
        if (!sources) continue;
        const outcome = await readField(field, sources, (source) => readSource(source, field, account), env, readOptions.cheapOnly === true);
        if (outcome.value) reading.values[field] = outcome.value;
        else if (outcome.skipped) reading.skipped.push(field);
        else {
          reading.errors[field] = outcome.failures.join('; ');
          log.debug('identity field unavailable', { account: account.name, profile: name, field, reason: reading.errors[field] });
        }
      }
      return reading;
    },

    detect: () => detectProfiles(options.profileDirs, root, log),
  };
}

/** One field read from its sources in order: the first usable value, or skipped (cheapOnly), or why each failed. */
async function readField(
  field: IdentityField,
  sources: readonly ValueSource[],
  read: (source: ValueSource) => Promise<SourceOutcome>,
  env: NodeJS.ProcessEnv,
  cheapOnly: boolean,
): Promise<{ value?: IdentityValue; skipped?: true; failures: string[] }> {
  const failures: string[] = [];
  for (const source of sources) {
    const where = describeSource(source, field, env);
    if (cheapOnly && isExpensive(source)) return { skipped: true, failures };
    const outcome = await read(source);
    if (!outcome.ok) {
      failures.push(`${where}: ${outcome.reason}`);
      continue;
    }
    const check = checkValue(field, outcome.value);
    if (check.ok) return { value: { value: check.value, source: where }, failures };
    if (check.empty) {
      failures.push(`${where}: empty value`);
      continue;
    }
    // A value that cannot be sent is an error, not a reason to try the next source:
    // falling through would make the device report a different identity.
    failures.push(`${where}: ${check.message}`);
    break;
  }
  return { failures };
}

/** The profiles in `profileDirs` whose every match condition holds under `root`, most specific first. */
async function detectProfiles(profileDirs: readonly string[], root: string, log: Logger): Promise<DetectResult> {
  const files = await listProfileFiles(profileDirs);
  const matches: DetectedProfile[] = [];
  const invalid: ProfileError[] = [];
  for (const file of files.values()) {
    let profile: DeviceProfile;
    try {
      profile = await readProfileFile(file);
    } catch (err) {
      if (!(err instanceof ProfileError)) throw err;
      log.warn('invalid device profile skipped', { file, problems: err.problems });
      invalid.push(err);
      continue;
    }
    if (!profile.match) continue;
    let holds = true;
    for (const condition of profile.match) {
      if (!(await conditionHolds(condition, root))) {
        holds = false;
        break;
      }
    }
    if (holds) matches.push({ profile: profile.name, description: profile.description, conditions: profile.match.length });
  }
  matches.sort((a, b) => b.conditions - a.conditions || a.profile.localeCompare(b.profile));
  return { matches, invalid };
}
