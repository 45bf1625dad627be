import { existsSync } from 'node:fs';
import { BUNDLED_PROFILE_DIR, ETC_PROFILE_DIR, resolveConfigPath, type AccountConfig, type AgentConfig } from '../../config/index.js';
import { loadConfig, deviceHeadersOf } from '../../authorities/index.js';
import {
  createIdentityReader,
  identityProblem,
  IDENTITY_FIELDS,
  ProfileError,
  PROFILE_NAME,
  ProfileNotFoundError,
  requiredFields,
  sendsDeviceHeaders,
  type IdentityReader,
  type IdentityReading,
} from '../../identity/index.js';
import { CliError, configOption, type Io, parse, println, UsageError } from '../common.js';

export const identityHelp = `Usage: pos-token-agent identity [--account NAME] [--profile NAME] [--json] [--config FILE]
       pos-token-agent identity --detect [--json] [--config FILE]

Reads the device identity an account logs in with (the posserial, pososversion and
posmodelframework headers) and shows each value with the source it came from: the
account's device profile, and the config's accounts.NAME.identity values, which override
the profile's. Nothing is sent anywhere; identity values are not secrets.

  --account NAME   the account (needed when the config has several)
  --profile NAME   read with this device profile instead of the account's, to choose one
  --detect         list the device profiles matching this hardware, most specific first
  --json           print one JSON object instead of a table

Exits 1 when what was read is not usable for a login on its own (a required value missing,
or a value the profile gives sources for unreadable or unsendable; the running agent would
then log in with its last good identity, if it has one), and with --detect when no profile
matches.`;

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
  if (values.detect) {
    // Detection helps write the config, so it also works before there is one at the default place.
    const config = values.config === undefined && io.env.POS_TOKEN_AGENT_CONFIG === undefined && !existsSync(path)
      ? undefined
      : loadConfig(path, io.env);
    return detect(readerFor(config, io.env), values.json === true, io);
  }
  const config = loadConfig(path, io.env);
  const account = pickAccount(config, values.account);
  const reader = readerFor(config, io.env);
  let reading: IdentityReading;
  try {
    reading = await reader.read(account, values.profile !== undefined ? { profile: values.profile } : {});
  } catch (err) {
    if (err instanceof ProfileError || err instanceof ProfileNotFoundError) throw new CliError(err.message);
    throw err;
  }
  const usable = !sendsDeviceHeaders(deviceHeadersOf(account)) || identityProblem(account, reading, requiredFields(deviceHeadersOf(account))) === undefined;
  const required = requiredFields(deviceHeadersOf(account));
  if (values.json) {
    println(
      io.stdout,
      JSON.stringify(
        {
          account: account.name,
          authority: account.authority,
          profile: reading.profile,
          values: reading.values,
          errors: reading.errors,
          required,
          ok: usable,
        },
        null,
        2,
      ),
    );
    return usable ? 0 : 1;
  }
  println(io.stdout, `account ${account.name} (${account.authority}), ${reading.profile ? `device profile ${reading.profile}` : 'no device profile (config values only)'}`);
  if (!sendsDeviceHeaders(deviceHeadersOf(account))) {
    println(io.stdout, `(${account.authority} sends no device headers: these values are not used)`);
  }
  const rows = IDENTITY_FIELDS.map((field) => {
    const v = reading.values[field];
    if (v) return [field, v.value, v.source];
    const what = reading.errors[field] !== undefined ? 'unreadable (see below)' : 'no source: not sent';
    return [field, '-', required.includes(field) ? `${what}; required` : what];
  });
  println(io.stdout);
  for (const line of table([['FIELD', 'VALUE', 'SOURCE'], ...rows])) println(io.stdout, `  ${line}`);
  const errors = IDENTITY_FIELDS.filter((f) => reading.errors[f] !== undefined);
  if (errors.length) {
    println(io.stdout);
    for (const field of errors) println(io.stdout, `${field}: ${reading.errors[field]}`);
  }
  if (!usable) {
    println(io.stderr, `pos-token-agent: the agent cannot log in with this identity: ${identityProblem(account, reading, requiredFields(deviceHeadersOf(account)))}`);
    return 1;
  }
  return 0;
}

function readerFor(config: AgentConfig | undefined, env: NodeJS.ProcessEnv): IdentityReader {
  return createIdentityReader({
    profileDirs: config?.deviceProfileDirs ?? [BUNDLED_PROFILE_DIR, ETC_PROFILE_DIR],
    root: config?.identityRoot ?? '/',
    env,
  });
}

function pickAccount(config: AgentConfig, name: string | undefined): AccountConfig {
  const names = Object.keys(config.accounts);
  if (name === undefined) {
    if (names.length === 1) return config.accounts[names[0]!]!;
    throw new UsageError(`the config has several accounts (${names.join(', ')}); choose one with --account`);
  }
  const account = config.accounts[name];
  if (!account) throw new CliError(`no account ${JSON.stringify(name)} in ${config.source} (accounts: ${names.join(', ')})`);
  return account;
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
    println(io.stdout, 'or write a profile for it (see "Device profiles" in the README).');
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
