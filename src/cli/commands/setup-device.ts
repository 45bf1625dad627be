/**
 * Set-up's steps for the box and its secrets: the device profile and identity values (authorities that send
 * device headers), and the credentials, checked with one login and stored by `provision --stdin` (never on a
 * command line).
 */
import type { AuthorityModule } from '../../authorities/index.js';
import { CliError } from '../common.js';
import { ask } from '../prompt.js';
import type { RawAccount } from './setup-config.js';
import { runStep } from './setup-runner.js';
import { askValid, missing, type SetupContext } from './setup-steps.js';

type Values = Record<string, string | undefined>;
/** Wrong credentials in a row (a refused check login) before set-up stops asking. */
const CREDENTIAL_TRIES = 3;

/** The identity values given with --serial, --os-version, --model-framework (or their variables). */
export function givenIdentity(ctx: SetupContext): Values {
  return { posserial: ctx.value('POS_SERIAL'), pososversion: ctx.value('POS_OS_VERSION'), posmodelframework: ctx.value('POS_MODEL_FRAMEWORK') };
}

/** Puts the given identity values into the account, over what it had. */
export function setIdentity(a: RawAccount, module: AuthorityModule, given: Values): void {
  if (!module.deviceHeaders) return;
  const identity: Record<string, string> = { ...(a.identity as Record<string, string> | undefined) };
  for (const f of module.deviceHeaders.fields) if (given[f]) identity[f] = given[f]!;
  if (Object.keys(identity).length) a.identity = identity;
}

/**
 * The device profile and, for "manual", the identity values; written to the account; returns what the box's
 * identity reads as (shown, and in the summary). Nothing for an authority without device headers.
 */
export async function chooseDevice(ctx: SetupContext, account: string, module: AuthorityModule, write: (change: (a: RawAccount) => void) => void): Promise<Record<string, string>> {
  const headers = module.deviceHeaders;
  if (!headers) return {};
  const given = givenIdentity(ctx);
  const now = ctx.file.read()?.accounts?.[account] ?? {};
  const configured = (now.identity ?? {}) as Record<string, string>;
  const profile = await chooseProfile(ctx, account, now, configured.posserial || given.posserial);
  const effective = profile || (typeof now.deviceProfile === 'string' ? now.deviceProfile : '');
  if (effective === 'manual' && !given.posserial && !configured.posserial && headers.required.includes('posserial')) {
    if (!ctx.interactive) missing('posserial (manual profile)', '--serial or POS_SERIAL');
    given.posserial = await askValid(ctx, 'POS serial number (posserial)', '', (v) => (v ? undefined : 'the serial number is required'));
    given.pososversion = (await ask(ctx.io, withDefault('POS OS version (pososversion)', configured.pososversion ?? ''), false)).trim() || configured.pososversion;
    given.posmodelframework = (await ask(ctx.io, withDefault('POS model/framework (posmodelframework)', configured.posmodelframework ?? '1'), false)).trim() || (configured.posmodelframework ?? '1');
  }
  if (profile || headers.fields.some((f) => given[f])) {
    write((a) => {
      if (profile) a.deviceProfile = profile;
      setIdentity(a, module, given);
    });
  }
  return readIdentity(ctx, account);
}

const withDefault = (text: string, fallback: string): string => (fallback ? `${text} [${fallback}]: ` : `${text}: `);

/**
 * The profile to write ('' to leave the account's as it is): given (and checked), else asked with the stored
 * one as default; an account with neither a profile nor a serial gets the detected one (asked interactively).
 */
async function chooseProfile(ctx: SetupContext, account: string, now: RawAccount, serial: string | undefined): Promise<string> {
  const problem = (p: string): Promise<string | undefined> =>
    p ? ctx.file.profileProblem(account, (a) => void (a.deviceProfile = p)) : Promise.resolve('no profile given');
  const flag = ctx.value('POS_PROFILE');
  if (flag) {
    const wrong = await problem(flag);
    if (wrong) throw new CliError(wrong);
    return flag;
  }
  const stored = typeof now.deviceProfile === 'string' ? now.deviceProfile : '';
  if (stored) return ctx.interactive ? askValid(ctx, 'Device profile', stored, problem) : '';
  if (serial) return '';
  const detected = await detectProfiles(ctx);
  if (!ctx.interactive) return detected[0] ?? missing('the device profile (none detected)', '--profile or POS_PROFILE (manual with POS_SERIAL...)');
  if (!detected.length) ctx.say('No device profile matches this hardware; "manual" takes the values from you.');
  return askValid(ctx, 'Device profile', detected[0] ?? 'manual', problem);
}

async function detectProfiles(ctx: SetupContext): Promise<string[]> {
  const detected: string[] = [];
  const r = await runStep(ctx.runner.agent, ['identity', '--detect', '--json', '--config', ctx.configPath], ctx.io, { quiet: true, timeoutMs: 120_000 });
  try {
    for (const m of (JSON.parse(r.stdout) as { matches?: Array<{ profile: string; description?: string }> }).matches ?? []) {
      detected.push(m.profile);
      ctx.say(`  detected device profile: ${m.profile}  (${m.description ?? ''})`);
    }
  } catch {
    // nothing detected
  }
  return detected;
}

/** The box's identity as the account reads it now, said in one line, and any problem with it. */
async function readIdentity(ctx: SetupContext, account: string): Promise<Record<string, string>> {
  const shown: Record<string, string> = {};
  const r = await runStep(ctx.runner.agent, ['identity', '--account', account, '--json', '--config', ctx.configPath], ctx.io, { quiet: true, timeoutMs: 120_000 });
  try {
    const j = JSON.parse(r.stdout) as { values?: Record<string, { value?: string }>; errors?: Record<string, string> };
    for (const [f, v] of Object.entries(j.values ?? {})) if (v.value) shown[f] = v.value;
    if (shown.posserial) {
      ctx.say(`Identity of this box: posserial ${shown.posserial}, pososversion ${shown.pososversion ?? '-'}, posmodelframework ${shown.posmodelframework ?? '-'}`);
    }
    const errors = Object.entries(j.errors ?? {});
    if (errors.length) ctx.say(`Identity problem: ${errors[0]![0]}: ${errors[0]![1]}`);
  } catch {
    return {};
  }
  return shown;
}

/** The credentials: from the values, else asked (secrets hidden); a required one left empty is asked again. */
export async function collectCredentials(ctx: SetupContext, module: AuthorityModule, again = false): Promise<Record<string, string>> {
  const credentials: Record<string, string> = {};
  for (const f of module.credentials) {
    let v = again ? '' : (ctx.value(f.env) ?? '');
    if (!v && ctx.interactive) {
      const label = `${f.label}${f.required ? '' : ' (Enter to leave out)'}`;
      const check = (x: string): string | undefined =>
        /[\x00-\x1f\x7f]/.test(x) ? `${f.name} contains control characters` : f.required && !x ? `${f.name} is required` : undefined;
      v = f.secret ? await askSecret(ctx, label, check) : await askValid(ctx, label, '', check);
    }
    if (!v) {
      if (!f.required) continue;
      missing(f.name, `${f.env} (or --from FILE)`);
    }
    if (/[\x00-\x1f\x7f]/.test(v)) throw new CliError(`${f.name} contains control characters`);
    credentials[f.name] = v;
  }
  return credentials;
}

/** A hidden answer, asked again (bounded) while `check` refuses it; never shown, not even its length. */
async function askSecret(ctx: SetupContext, label: string, check: (v: string) => string | undefined): Promise<string> {
  for (let tries = 1; ; tries++) {
    const v = (await ask(ctx.io, `${label}: `, true)).trim();
    const problem = check(v);
    if (problem === undefined) return v;
    if (tries >= 5) throw new CliError(problem);
    ctx.say(`  ${problem}; try again`);
  }
}

/**
 * Checks (one login, unless --no-verify) and stores the credentials with `provision --stdin` where the agent's
 * state is its own. Interactively, credentials the check refuses are asked again (a bounded number of times);
 * returns provision's output line.
 */
export async function storeCredentials(ctx: SetupContext, account: string, module: AuthorityModule, url: string, verify: boolean): Promise<string> {
  let credentials = await collectCredentials(ctx, module);
  for (let tries = 1; ; tries++) {
    ctx.say(verify ? `Checking the credentials with a login to ${url} ...` : 'Storing the credentials without a check login (--no-verify) ...');
    const stored = await runStep(
      ctx.runner.agent,
      ['provision', '--account', account, '--stdin', '--config', ctx.configPath, ...(verify ? [] : ['--no-verify'])],
      ctx.io,
      { stdin: JSON.stringify(credentials), timeoutMs: 180_000 },
    );
    if (stored.code === 0) return stored.stdout.trim();
    if (!ctx.interactive || tries >= CREDENTIAL_TRIES) throw new CliError('the credentials were not stored (see the message above); fix and run this again');
    ctx.say('The credentials were not stored (above). Enter them again (Ctrl-C stops):');
    credentials = await collectCredentials(ctx, module, true);
  }
}
