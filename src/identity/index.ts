/**
 * Device identity for a login: the posserial, pososversion and posmodelframework headers.
 * Values come from the account's device profile (device-profiles/*.json: DMI, device tree,
 * os-release, files, the machine id, a fiscal module on a serial port, env, static values)
 * and from the account's `identity` in the config, which overrides the profile per field.
 */
import type { AccountConfig, DeviceHeaders, DeviceIdentity } from '../config/index.js';
import { IDENTITY_FIELDS, type IdentityField } from './fields.js';
import { listProfileFiles, ProfileError, ProfileNotFoundError } from './profile.js';
import { createIdentityReader, type IdentityReader, type IdentityReaderOptions, type IdentityReading } from './reader.js';

export { FIELD_LIMITS, IDENTITY_FIELDS, requiredFields, sendsDeviceHeaders, type IdentityField } from './fields.js';
export {
  parseProfile,
  PROFILE_NAME,
  profileJsonSchema,
  ProfileError,
  ProfileNotFoundError,
  type DeviceProfile,
  type MatchCondition,
  type SerialSource,
  type ValueSource,
} from './profile.js';
export {
  createIdentityReader,
  defaultMachineId,
  isExpensive,
  type DetectedProfile,
  type DetectResult,
  type IdentityReader,
  type IdentityReaderOptions,
  type IdentityReading,
  type IdentityValue,
  type ReadOptions,
} from './reader.js';
export { createPortLocks, processPortLocks, type PortLocks } from './serial.js';
export { checkMachineId } from './sources.js';

export type IdentityResult = { ok: true; identity: DeviceIdentity } | { ok: false; message: string };

/**
 * Why a reading cannot be used for a login, or undefined when it can: a required field is
 * missing, or a field the profile gives sources for yielded nothing usable.
 */
export function identityProblem(
  account: AccountConfig,
  reading: IdentityReading,
  required: ReadonlyArray<IdentityField>,
): string | undefined {
  const problems: string[] = [];
  for (const field of IDENTITY_FIELDS) {
    const why = reading.errors[field];
    if (why !== undefined) problems.push(`no ${field} (${why})`);
    else if (required.includes(field) && reading.values[field] === undefined && !reading.skipped.includes(field)) {
      problems.push(
        `no ${field}; set accounts.${account.name}.identity.${field} in the config` +
          (reading.profile === null ? ', or give the account a deviceProfile' : ` (profile ${reading.profile} has no source for it)`),
      );
    }
  }
  if (problems.length === 0) return undefined;
  return `account ${account.name}${reading.profile ? ` (device profile ${reading.profile})` : ''}: ${problems.join('; ')}`;
}

export function toDeviceIdentity(reading: IdentityReading): DeviceIdentity {
  const identity: DeviceIdentity = {};
  for (const field of IDENTITY_FIELDS) {
    const v = reading.values[field];
    if (v !== undefined) identity[field] = v.value;
  }
  return identity;
}

/**
 * What `provision` calls before its verifying login (the agent merges readings with the last good
 * identity in tokens/identity-tracker.ts instead). Accounts of authorities that
 * send no device headers get their config identity as it is, without reading any profile.
 */
export function createIdentityResolver(
  options: IdentityReaderOptions | IdentityReader,
  /** The device headers of an account's authority (authorities/ deviceHeadersOf); undefined: none. */
  deviceHeaders: (account: AccountConfig) => DeviceHeaders | undefined,
): (account: AccountConfig) => Promise<IdentityResult> {
  const reader = 'read' in options ? options : createIdentityReader(options);
  return async (account) => {
    const headers = deviceHeaders(account);
    if (headers === undefined) return { ok: true, identity: { ...account.identity } };
    let reading: IdentityReading;
    try {
      reading = await reader.read(account);
    } catch (err) {
      if (err instanceof ProfileError || err instanceof ProfileNotFoundError) return { ok: false, message: err.message };
      throw err;
    }
    const problem = identityProblem(account, reading, headers.required);
    return problem === undefined ? { ok: true, identity: toDeviceIdentity(reading) } : { ok: false, message: problem };
  };
}

/**
 * For `run`, at start and on reload: one problem per account whose device profile is in none of `dirs`, naming
 * the directories and the profiles they hold (what doctor reports), e.g. `account default: device profile
 * "generic-x68" not found in /usr/lib/pos-token-agent/device-profiles, /etc/pos-token-agent/device-profiles;
 * available: generic-x86, manual, raspberry-pi, serial-fiscal-module`. Only accounts whose authority sends
 * device headers can have one (config refuses it on the others). A directory that cannot be listed is left
 * to the logins to report, as before, since whether the profile exists cannot be told.
 */
export async function missingDeviceProfiles(
  accounts: Readonly<Record<string, Pick<AccountConfig, 'name' | 'authority' | 'deviceProfile'>>>,
  dirs: readonly string[],
): Promise<string[]> {
  const wanted = Object.values(accounts).filter((a) => a.deviceProfile !== undefined);
  if (wanted.length === 0) return [];
  let files: Map<string, string>;
  try {
    files = await listProfileFiles(dirs);
  } catch (err) {
    if (err instanceof ProfileError) return [];
    throw err;
  }
  const available = [...files.keys()].sort();
  return wanted
    .filter((a) => !files.has(a.deviceProfile!))
    .map(
      (a) =>
        `account ${a.name}: device profile ${JSON.stringify(a.deviceProfile)} not found in ${dirs.join(', ') || '(no directories)'}; ` +
        `available: ${available.join(', ') || 'none'}`,
    );
}
