/**
 * The questions of set-up, one step each: the account, the authority, the identity and API URLs, the device,
 * the credentials. Interactively a wrong answer is asked again with the reason (a bounded number of times);
 * running it again offers the stored values as defaults. Non-interactively nothing is asked: a value that is
 * missing or wrong fails at once.
 */
import type { AuthorityModule, AuthorityRegistry } from '../../authorities/index.js';
import { ACCOUNT_NAME_RULE, isAccountName } from '../../api/index.js';
import { CliError, type Io } from '../common.js';
import { ask } from '../prompt.js';
import { keepForAuthority, type ConfigFile, type RawAccount } from './setup-config.js';
import type { Runner } from './setup-runner.js';

/** Wrong answers in a row before set-up stops asking (every wait is bounded, a person's too). */
const MAX_TRIES = 5;

export interface SetupContext {
  io: Io;
  registry: AuthorityRegistry;
  interactive: boolean;
  /** A value from the flags, --from FILE or the environment (empty counts as not given). */
  value(key: string): string | undefined;
  say(text: string): void;
  file: ConfigFile;
  runner: Runner;
  configPath: string;
}

/** A check of an answer: the reason it is wrong, or undefined. */
type Check = (answer: string) => string | undefined | Promise<string | undefined>;

/**
 * Asks `text` until `check` passes; Enter takes `fallback` (shown as [fallback]). A wrong answer is said, with
 * its reason, and asked again; after MAX_TRIES wrong answers set-up stops with the last reason.
 */
export async function askValid(ctx: SetupContext, text: string, fallback: string, check: Check): Promise<string> {
  for (let tries = 1; ; tries++) {
    const typed = (await ask(ctx.io, fallback ? `${text} [${fallback}]: ` : `${text}: `, false)).trim();
    const answer = typed || fallback;
    const problem = await check(answer);
    if (problem === undefined) return answer;
    if (tries >= MAX_TRIES) throw new CliError(`${problem} (${MAX_TRIES} answers refused; run it again)`);
    ctx.say(`  ${problem}; try again`);
  }
}

export function missing(what: string, how: string): never {
  throw new CliError(`${what} is missing: pass ${how} (non-interactive mode asks nothing)`);
}

const accountProblem = (name: string): string | undefined =>
  isAccountName(name) ? undefined : `account name ${JSON.stringify(name)}: ${ACCOUNT_NAME_RULE}`;

/** The account: given, the config's only one, else asked (default "default"). */
export async function chooseAccount(ctx: SetupContext): Promise<string> {
  const names = Object.keys(ctx.file.read()?.accounts ?? {});
  const given = ctx.value('POS_ACCOUNT') ?? (names.length === 1 ? names[0]! : '');
  if (given || !ctx.interactive) {
    const account = given || 'default';
    const problem = accountProblem(account);
    if (problem) throw new CliError(problem);
    return account;
  }
  return askValid(ctx, 'Account name (tills ask for "default")', 'default', accountProblem);
}

/** The authority: given, the account's, else asked from the registry's list. */
export async function chooseAuthority(ctx: SetupContext, account: string): Promise<AuthorityModule> {
  const existing = ctx.file.read()?.accounts?.[account];
  const name = ctx.value('POS_AUTHORITY') ?? (typeof existing?.authority === 'string' ? existing.authority : '');
  const unknown = (n: string): string | undefined => (ctx.registry.get(n) ? undefined : `unknown authority ${n} (known: ${ctx.registry.names.join(', ')})`);
  if (name) {
    const problem = unknown(name);
    if (problem) throw new CliError(problem);
    return ctx.registry.get(name)!;
  }
  if (!ctx.interactive) missing('the authority', '--authority or POS_AUTHORITY');
  ctx.say(`Authorities: ${ctx.registry.modules.map((m) => `${m.name} (${m.title})`).join(', ')}`);
  return ctx.registry.get(await askValid(ctx, 'Authority', ctx.registry.names[0]!, unknown))!;
}

export interface Urls {
  url: string;
  /** The API for the outbox and the proxy: a URL, null to remove the account's, undefined to leave it as it is. */
  apiUrl: string | null | undefined;
}

/** What the account's settings become: the authority, its URL, the API URL (options the new authority refuses go). */
export function accountChange(module: AuthorityModule, registry: AuthorityRegistry, urls: Partial<Urls>): (a: RawAccount) => void {
  return (a) => {
    if (a.authority !== module.name) keepForAuthority(a, module, registry);
    a.authority = module.name;
    if (urls.url !== undefined) {
      if (module.endpoint.option !== 'identityUrl') delete a.identityUrl;
      a[module.endpoint.option] = urls.url;
    }
    if (urls.apiUrl === null) delete a.apiUrl;
    else if (urls.apiUrl !== undefined) a.apiUrl = urls.apiUrl;
  };
}

/** The agent's own problem with `key` of the account once `change` is made, or undefined. */
function keyProblem(ctx: SetupContext, account: string, key: string, change: (a: RawAccount) => void): string | undefined {
  const checked = ctx.file.check(account, change);
  if (checked.ok) return undefined;
  const prefix = `accounts.${account}.${key}`;
  return checked.problems.find((p) => p.startsWith(`${prefix}:`) || p.startsWith(`${prefix}.`));
}

/**
 * The identity service URL and the API URL: given, else asked (the stored ones as defaults); the API hosts the
 * authority is known to have are shown, and Enter leaves the API out. Non-interactively the stored ones stay.
 */
export async function chooseUrls(ctx: SetupContext, account: string, module: AuthorityModule): Promise<Urls> {
  const existing = ctx.file.read()?.accounts?.[account];
  const sameAuthority = existing?.authority === module.name;
  const stored = (key: string): string => (sameAuthority && typeof existing?.[key] === 'string' ? (existing[key] as string) : '');
  const storedUrl = stored(module.endpoint.option);
  let url = ctx.value('POS_IDENTITY_URL') ?? '';
  if (!url && !ctx.interactive) url = storedUrl || missing('the identity service URL', '--identity-url or POS_IDENTITY_URL');
  if (!url) {
    if (module.endpoint.hint) ctx.say(module.endpoint.hint);
    const check = (u: string): string | undefined =>
      u ? keyProblem(ctx, account, module.endpoint.option, accountChange(module, ctx.registry, { url: u })) : 'no URL given';
    url = await askValid(ctx, module.endpoint.label, storedUrl, check);
  }
  const givenApi = ctx.value('POS_API_URL');
  if (givenApi !== undefined || !ctx.interactive) return { url, apiUrl: givenApi };
  return { url, apiUrl: await askApiUrl(ctx, account, module, url, stored('apiUrl')) };
}

async function askApiUrl(ctx: SetupContext, account: string, module: AuthorityModule, url: string, stored: string): Promise<string | null | undefined> {
  ctx.say(module.api?.hint ?? `The API URL of ${module.title}: where the outbox and the proxy send the till's documents.`);
  ctx.say(stored ? '  Enter keeps it, "none" removes it (no outbox, no proxy).' : '  Enter to skip it (no outbox, no proxy).');
  const check = (u: string): string | undefined =>
    !u || u === 'none' ? undefined : keyProblem(ctx, account, 'apiUrl', accountChange(module, ctx.registry, { url, apiUrl: u }));
  const answer = await askValid(ctx, 'API URL', stored, check);
  if (answer === 'none') return stored ? null : undefined;
  return answer || undefined;
}
