import {
  ACCOUNT_NAME_RULE,
  DEFAULT_ACCOUNT,
  isAccountName,
  isUsableState,
  MAX_MIN_TTL_S,
  parseMinTtl,
  type AccountStatusBody,
  type ErrorBody,
  type OutboxStatusBody,
} from '../../api/index.js';
import { agentClient, agentUnknownAccount, CliError, configOption, duration, type Io, parse, println, UsageError } from '../common.js';

export const tokenHelp = `Usage: pos-token-agent token [--account NAME] [--min-ttl S] [--json] [--socket PATH | --config FILE]

Asks the running agent for a token with at least S seconds left (default 60, at most
${MAX_MIN_TTL_S}) and prints the bare token, or with --json the whole answer.
Exit 0 with a token; 1 when the agent has none to give (the reason is on stderr);
2 for a usage error, an account the agent does not have included.

The socket is --socket, else the config's; a user who may not read the config (till
software) gets the default /run/pos-token-agent/agent.sock, and so does a config that
is missing or broken (a note on stderr says so).`;

export const statusHelp = `Usage: pos-token-agent status [--json] [--socket PATH | --config FILE]

Shows what the running agent reports: each account's state, expiry, last successful
login, last login attempt and last error, and its outbox (entries waiting, the oldest's
age, the last delivery and the last delivery error) when it has one.
Exits 1 when an account holds no usable token.

The socket is --socket, else the config's; a user who may not read the config (till
software) gets the default /run/pos-token-agent/agent.sock, and so does a config that
is missing or broken (a note on stderr says so).`;

/** The options of every command that asks the running agent (outbox's too). */
export const socketOptions = { ...configOption, socket: { type: 'string' }, json: { type: 'boolean' } } as const;

export async function tokenCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { ...socketOptions, account: { type: 'string', short: 'a' }, 'min-ttl': { type: 'string' } });
  if (values.help) return println(io.stdout, tokenHelp), 0;
  const account = values.account;
  if (account !== undefined && !isAccountName(account)) throw new UsageError(`--account: ${ACCOUNT_NAME_RULE}`);
  const minTtl = values['min-ttl'] === undefined ? undefined : parseMinTtl(values['min-ttl']);
  if (values['min-ttl'] !== undefined && minTtl === undefined) {
    throw new UsageError(`--min-ttl takes whole seconds from 0 to ${MAX_MIN_TTL_S}`);
  }
  const answer = await agentClient(values, io).token({
    ...(account !== undefined ? { account } : {}),
    ...(minTtl !== undefined ? { minTtl } : {}),
  });
  if (answer.ok) {
    println(io.stdout, values.json ? JSON.stringify(answer.token, null, 2) : answer.token.access_token);
    return 0;
  }
  if (values.json) println(io.stdout, JSON.stringify(answer.error, null, 2));
  throw tokenFailure(answer.status, answer.error, account ?? DEFAULT_ACCOUNT);
}

/** The agent's "no" as the user's mistake (exit 2) or as the reason there is no token (exit 1). */
function tokenFailure(status: number, e: ErrorBody, account: string): Error {
  switch (e.error) {
    case 'unknown_account':
      return agentUnknownAccount(account, e)!;
    case 'min_ttl_unsatisfiable':
      return new CliError(
        e.lifetime_s !== undefined && e.min_ttl !== undefined
          ? `no token of account ${account} can have ${e.min_ttl} s left: its tokens live ${e.lifetime_s} s; ask for less with --min-ttl`
          : `no token of account ${account} can have that many seconds left: ${e.message}`,
      );
    case 'bad_request':
      return new UsageError(`the agent refused the request: ${e.message}`);
    default:
      return new CliError(describeError(status, e));
  }
}

export async function statusCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, socketOptions);
  if (values.help) return println(io.stdout, statusHelp), 0;
  const status = await agentClient(values, io).status();
  const healthy = Object.values(status.accounts).every((a) => isUsableState(a.state));
  if (values.json) {
    println(io.stdout, JSON.stringify(status, null, 2));
    return healthy ? 0 : 1;
  }
  println(io.stdout, `pos-token-agent ${status.version}, up ${status.uptime_s} s`);
  for (const [name, a] of Object.entries(status.accounts)) {
    println(io.stdout, `\n${name} (${a.authority}): ${a.state}`);
    for (const line of accountLines(a)) println(io.stdout, `  ${line}`);
  }
  return healthy ? 0 : 1;
}

/** One account of `status`, a line per fact. */
export function accountLines(a: AccountStatusBody): string[] {
  // null: none yet; undefined: an agent from before last_success_at.
  const when = (at: string | null | undefined): string => (at === null ? 'never' : (at ?? '-'));
  const lines = [`expires at:    ${a.expires_at ?? '-'}`, `last success:  ${when(a.last_success_at)}`, `last attempt:  ${when(a.last_login_at)}`];
  const e = a.last_error;
  if (e) lines.push(`last error:    ${e.reason} at ${e.at}: ${e.message}`);
  if (a.next_attempt_in_s) lines.push(`next try in:   ${a.next_attempt_in_s} s`);
  if (a.outbox) lines.push(`outbox:        ${outboxSummary(a.outbox)}`);
  return lines;
}

/**
 * An account's outbox in one line: "3 queued, oldest 2 min, last delivered 10:42:07Z, last error: ...". A delivery
 * today (UTC) shows its time only; the error is cut at 120 characters (`outbox list` shows each entry's).
 */
export function outboxSummary(o: OutboxStatusBody, nowMs = Date.now()): string {
  const parts = [`${o.queued} queued`];
  if (o.oldest_queued_s !== null) parts.push(`oldest ${duration(o.oldest_queued_s)}`);
  if (o.last_delivered_at) parts.push(`last delivered ${shortTime(o.last_delivered_at, nowMs)}`);
  if (o.last_error) parts.push(`last error: ${shorten(o.last_error, 120)}`);
  return parts.join(', ');
}

/** ISO 8601 UTC to the second; the time alone on the same UTC day as `nowMs`. */
export function shortTime(iso: string, nowMs: number): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const full = new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return full.slice(0, 10) === new Date(nowMs).toISOString().slice(0, 10) ? full.slice(11) : full;
}

/** One line of at most `max` characters: whitespace runs (newlines too) become one space, the rest cut with "...". */
export function shorten(text: string, max: number): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 3)}...`;
}

/** Any other "no" of the agent, in one line: status, code, reason, message, when to retry. */
export function describeError(status: number, body: ErrorBody): string {
  const what = [body.error, 'reason' in body ? body.reason : undefined].filter(Boolean).join(': ');
  const retry = 'retry_after' in body && body.retry_after ? ` (retry in ${body.retry_after} s)` : '';
  return `the agent answered ${status}${what ? ` ${what}` : ''}${body.message ? ` - ${body.message}` : ''}${retry}`;
}
