import { BUNDLED_PROFILE_DIR, ETC_PROFILE_DIR, resolveConfigPath, type AccountConfig, type AgentConfig } from '../../config/index.js';
import { authorities, deviceHeadersOf, loadConfig, parseConfig } from '../../authorities/index.js';
import {
  createIdentityReader,
  identityProblem,
  IDENTITY_FIELDS,
  ProfileError,
  PROFILE_NAME,
  ProfileNotFoundError,
  requiredFields,
  sendsDeviceHeaders,
  type IdentityField,
  type IdentityReader,
  type IdentityReading,
  type ReadOptions,
} from '../../identity/index.js';
import { CliError, configAccount, configOption, type Io, parse, println, UsageError } from '../common.js';
const { existsSync } = process.getBuiltinModule('node:fs');

export const identityHelp = `Usage: pos-token-agent identity [--account NAME] [--profile NAME] [--json] [--config FILE]
       pos-token-agent identity --detect [--json] [--config FILE]

Reads the device identity an account logs in with (the posserial, pososversion and
posmodelframework headers) and shows each value with the source it came from: the
account's device profile, and the config's accounts.NAME.identity values, which override
the profile's. Nothing is sent anywhere; identity values are not secrets.

  --account NAME   the account (default: the only one, else the one named "default")
  --profile NAME   preview what this device profile reads, to choose one: every field is
                   read from the profile, also those the account's identity sets (noted
                   below the table). Works without a config file too (then with the
                   default profile directories and identity root /)
  --detect         list the device profiles matching this hardware, most specific first
  --json           print one JSON object instead of a table

Exits 1 when what was read is not usable for a login on its own (a required value missing,
or a value the profile gives sources for unreadable or unsendable; the running agent would
then log in with its last good identity, if it has one), and with --detect when no profile
matches; 2 for a usage error, an account the config does not have included.`;

const options = {
  ...configOption,
  account: { type: 'string', short: 'a' },
  profile: { type: 'string', short: 'p' },
  detect: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

export async function identityCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, options);
  if (values.help) return println(io.stdout, identityHelp), 0;
  if (values.detect && (values.account !== undefined || values.profile !== undefined)) {
    throw new UsageError('--detect takes neither --account nor --profile');
  }
  if (values.profile !== undefined && !PROFILE_NAME.test(values.profile)) {
    throw new UsageError(`--profile takes a profile name (letters, digits, ".", "_", "-"), got ${JSON.stringify(values.profile)}`);
  }
  const path = resolveConfigPath(values.config, io.env);
  // Detection and a profile preview help write the config, so they also work before there is one at the default place.
  const noConfig = values.config === undefined && io.env.POS_TOKEN_AGENT_CONFIG === undefined && !existsSync(path);
  if (values.detect) {
    return detect(readerFor(noConfig ? undefined : loadConfig(path, io.env), io.env), values.json === true, io);
  }
  const preview = values.profile !== undefined;
  const config = noConfig && preview && values.account === undefined ? undefined : loadConfig(path, io.env);
  // A preview before any account exists (no config file, or a fresh install's config without accounts).
  const withoutAccount = preview && values.account === undefined && (config === undefined || Object.keys(config.accounts).length === 0);
  const account = withoutAccount ? previewAccount() : pickAccount(config!, values.account);
  const reading = await readIdentity(readerFor(config, io.env), account, preview ? { profile: values.profile!, profileOnly: true } : {});
  const required = requiredFields(deviceHeadersOf(account));
  const shown: Shown = {
    account,
    reading,
    required,
    // In a preview, the account's fixed values that a login would send instead of what the profile read.
    overrides: preview && !withoutAccount ? configOverrides(account, reading) : {},
    problem: sendsDeviceHeaders(deviceHeadersOf(account)) ? identityProblem(account, reading, required) : undefined,
    preview,
    withoutAccount,
  };
  if (values.json) {
    println(io.stdout, JSON.stringify(jsonReport(shown), null, 2));
    return shown.problem === undefined ? 0 : 1;
  }
  const where = config ? `no account in ${config.source}` : `no config file (${path} not found): default profile directories, identity root /`;
  for (const line of report(shown, where)) println(io.stdout, line);
  if (shown.problem !== undefined) {
    println(io.stderr, `pos-token-agent: the agent cannot log in with this identity: ${shown.problem}`);
    return 1;
  }
  return 0;
}

/** What `identity` shows of one account's reading. */
interface Shown {
  account: AccountConfig;
  reading: IdentityReading;
  required: IdentityField[];
  overrides: Partial<Record<IdentityField, string>>;
  /** Why a login could not use this identity; undefined when it can (or the authority sends no device headers). */
  problem: string | undefined;
  preview: boolean;
  /** A preview with no account: `account` stands for any account of its authority. */
  withoutAccount: boolean;
}

/** The reader's answer; a profile that cannot be found or read is the user's to fix (exit 1), said as it is. */
async function readIdentity(reader: IdentityReader, account: AccountConfig, readOptions: ReadOptions): Promise<IdentityReading> {
  try {
    return await reader.read(account, readOptions);
  } catch (err) {
    if (err instanceof ProfileError || err instanceof ProfileNotFoundError) throw new CliError(err.message);
    throw err;
  }
}

function jsonReport(s: Shown): Record<string, unknown> {
  return {
    account: s.withoutAccount ? null : s.account.name,
    authority: s.account.authority,
    profile: s.reading.profile,
    values: s.reading.values,
    errors: s.reading.errors,
    ...(s.preview ? { config_overrides: s.overrides } : {}),
    required: s.required,
    ok: s.problem === undefined,
  };
}

/** The report as lines: what was read with which profile, a table of the fields, their errors, the overrides. */
function report(s: Shown, whereWithoutAccount: string): string[] {
  const { account, reading } = s;
  const lines = [
    s.withoutAccount
      ? `device profile ${reading.profile} as an ${account.authority} account reads it; ${whereWithoutAccount}`
      : `account ${account.name} (${account.authority}), ${reading.profile ? `device profile ${reading.profile}` : 'no device profile (config values only)'}${s.preview ? ' (preview)' : ''}`,
  ];
  if (!sendsDeviceHeaders(deviceHeadersOf(account))) {
    lines.push(`(${account.authority} sends no device headers: these values are not used)`);
  }
  const rows = IDENTITY_FIELDS.map((field) => {
    const v = reading.values[field];
    if (v) return [field, v.value, v.source];
    const what = reading.errors[field] !== undefined ? 'unreadable (see below)' : 'no source: not sent';
    return [field, '-', s.required.includes(field) ? `${what}; required` : what];
  });
  lines.push('', ...table([['FIELD', 'VALUE', 'SOURCE'], ...rows]).map((line) => `  ${line}`));
  const errors = IDENTITY_FIELDS.filter((f) => reading.errors[f] !== undefined);
  if (errors.length) lines.push('', ...errors.map((field) => `${field}: ${reading.errors[field]}`));
  const overridden = Object.entries(s.overrides);
  if (overridden.length) {
    lines.push('');
    for (const [field, value] of overridden) {
      lines.push(`note: the config sets accounts.${account.name}.identity.${field} (${JSON.stringify(value)}); the agent sends that instead of the profile's value`);
    }
  }
  return lines;
}

function readerFor(config: AgentConfig | undefined, env: NodeJS.ProcessEnv): IdentityReader {
  return createIdentityReader({
    profileDirs: config?.deviceProfileDirs ?? [BUNDLED_PROFILE_DIR, ETC_PROFILE_DIR],
    root: config?.identityRoot ?? '/',
    env,
  });
}

/**
 * The account a preview without one reads for: eReceipt (the authority that sends device headers), no identity
 * values. Its URL is never used: nothing is sent.
 */
/** An account of the first registered authority that sends device headers, for a preview without a config. */
function previewAccount(): AccountConfig {
  const module = authorities.modules.find((m) => m.deviceHeaders !== undefined);
  if (!module) throw new CliError('no authority of this version sends device headers: there is nothing to preview');
  const account = { authority: module.name, [module.endpoint.option]: 'https://preview.invalid' };
  return parseConfig({ accounts: { default: account } }, '(preview)', {}).accounts.default!;
}

/** The account's fixed identity values that differ from what the profile read (a login sends them instead). */
function configOverrides(account: AccountConfig, reading: IdentityReading): Partial<Record<IdentityField, string>> {
  const out: Partial<Record<IdentityField, string>> = {};
  for (const field of IDENTITY_FIELDS) {
    const fixed = account.identity[field];
    if (fixed !== undefined && fixed !== '' && reading.values[field]?.source !== `config identity.${field}`) out[field] = fixed;
  }
  return out;
}

/** The account named, else the only one, else the one named `default` (what tills ask for). */
function pickAccount(config: AgentConfig, name: string | undefined): AccountConfig {
  const names = Object.keys(config.accounts);
  if (name === undefined) {
    if (names.length === 0) throw new CliError(`no account in ${config.source} yet (preview a profile with --profile NAME)`);
    if (names.length === 1) return config.accounts[names[0]!]!;
    if (config.accounts.default) return config.accounts.default;
    throw new UsageError(`the config has several accounts (${names.join(', ')}); choose one with --account`);
  }
  return configAccount(config, name);
}

async function detect(reader: IdentityReader, json: boolean, io: Io): Promise<number> {
  const result = await reader.detect();
  if (json) {
    println(
      io.stdout,
      JSON.stringify(
        {
          matches: result.matches,
          invalid: result.invalid.map((e) => ({ file: e.file, problems: e.problems })),
        },
        null,
        2,
      ),
    );
    return result.matches.length ? 0 : 1;
  }
  for (const e of result.invalid) println(io.stderr, `warning: ${e.message}`);
  if (!result.matches.length) {
    println(io.stdout, 'No device profile matches this hardware. Use the "manual" profile and set the values in the config,');
    println(io.stdout, 'or write a profile for it (see "Writing a profile" in docs/authorities.md).');
    return 1;
  }
  println(io.stdout, 'Device profiles matching this hardware, most specific first:');
  println(io.stdout);
  for (const line of table(result.matches.map((m) => [m.profile, m.description]))) println(io.stdout, `  ${line}`);
  println(io.stdout);
  println(io.stdout, `Check one with: pos-token-agent identity --profile ${result.matches[0]!.profile}`);
  return 0;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
}
