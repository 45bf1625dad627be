/**
 * `outbox list|show|retry|cancel`: what the running agent holds for the authority's API, for a technician at
 * the till. Everything goes through the socket API (the agent alone writes outbox.db); the refusals say the
 * entry's state and what to do. Entries hold receipts, not secrets; no header is shown (the wire has none).
 */
import {
  ACCOUNT_NAME_RULE,
  isAccountName,
  OUTBOX_LIST_DEFAULT,
  OUTBOX_LIST_MAX,
  OUTBOX_STATES,
  type AgentClient,
  type ErrorBody,
  type OutboxEntryBody,
  type OutboxEntryResult,
  type OutboxEntryState,
} from '../../api/index.js';
import { agentClient, CliError, type Io, parse, println, splitPositionals, UsageError } from '../common.js';
import { describeError, shorten, shortTime, socketOptions } from './token.js';

export const outboxHelp = `Usage: pos-token-agent outbox list [--account NAME] [--state STATE] [--limit N] [--after CURSOR] [--json]
       pos-token-agent outbox show ID [--json]
       pos-token-agent outbox retry ID [--json]
       pos-token-agent outbox cancel ID [--json]
Each also takes --socket PATH | --config FILE.

The requests (receipts) tills handed to the running agent to deliver to the authority's
API, as the agent reports them. ID is an entry's id, a UUID as list shows it.

  list     one line per entry, what waits first: the queued and sending entries in
           the order they go, then the delivered, rejected and cancelled ones, each
           oldest first: id, account, state, attempts, created, last error.
           --state is one of ${OUTBOX_STATES.join(', ')};
           --limit 1 to ${OUTBOX_LIST_MAX} entries a page (default ${OUTBOX_LIST_DEFAULT}); when more
           follow, it prints the command for the next page (--after CURSOR).
  show     one entry: the request, its state, the API's last answer and the body as
           enqueued.
  retry    queue a rejected or cancelled entry again (it keeps its place in order); a
           queued entry is tried now instead of after its wait.
  cancel   take a queued entry out of the queue: it is not sent, but kept, and retry
           queues it again.

With --json each prints the agent's answer as it is.
Exit 0 on success; 1 when the entry does not exist or its state does not allow it (the
message says its state and what to do); 2 for a usage error, or an account the agent
does not have.

The socket is found as for status: --socket, else the config's, else the default
/run/pos-token-agent/agent.sock.`;

const listOptions = {
  ...socketOptions,
  account: { type: 'string', short: 'a' },
  state: { type: 'string' },
  limit: { type: 'string' },
  after: { type: 'string' },
} as const;
const SUBCOMMANDS = ['list', 'show', 'retry', 'cancel'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];
/** An entry id as the agent makes them (randomUUID) and its routes take them. */
const ENTRY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export async function outboxCommand(argv: string[], io: Io): Promise<number> {
  const { words, rest } = splitPositionals(argv, listOptions);
  const { values } = parse(rest, listOptions);
  if (values.help) return println(io.stdout, outboxHelp), 0;
  const [sub, id, ...extra] = words;
  if (sub === undefined) throw new UsageError(`outbox needs a subcommand: ${SUBCOMMANDS.join(', ')}`);
  if (!(SUBCOMMANDS as readonly string[]).includes(sub)) {
    throw new UsageError(`unknown outbox subcommand ${JSON.stringify(sub.slice(0, 40))}; one of ${SUBCOMMANDS.join(', ')}`);
  }
  if (sub === 'list') {
    if (id !== undefined) throw new UsageError('outbox list takes no other argument');
    const query = listQuery(values);
    const where = [...(values.config !== undefined ? ['--config', values.config] : []), ...(values.socket !== undefined ? ['--socket', values.socket] : [])];
    return list(agentClient(values, io), query, { json: values.json === true, where }, io);
  }
  for (const option of ['account', 'state', 'limit', 'after'] as const) {
    if (values[option] !== undefined) throw new UsageError(`--${option} is for outbox list only`);
  }
  if (id === undefined) throw new UsageError(`outbox ${sub} needs the id of an entry (outbox list shows them)`);
  if (extra.length > 0) throw new UsageError(`outbox ${sub} takes one entry id`);
  const entryId = id.toLowerCase();
  if (!ENTRY_ID.test(entryId)) throw new UsageError('an entry id is a UUID such as 0b5c3a52-4f0e-4d8e-9a57-2a1f7c1d9e01 (outbox list shows them)');
  return one(sub as Exclude<Subcommand, 'list'>, agentClient(values, io), entryId, values.json === true, io);
}

interface ListQuery {
  account?: string;
  state?: OutboxEntryState;
  limit: number;
  after?: string;
}

/** --account, --state, --limit and --after checked here, so that a mistake is a usage error before the agent is asked. */
function listQuery(values: {
  account?: string | undefined;
  state?: string | undefined;
  limit?: string | undefined;
  after?: string | undefined;
}): ListQuery {
  const { account, state, limit, after } = values;
  if (account !== undefined && !isAccountName(account)) throw new UsageError(`--account: ${ACCOUNT_NAME_RULE}`);
  if (state !== undefined && !(OUTBOX_STATES as readonly string[]).includes(state)) {
    throw new UsageError(`--state is one of ${OUTBOX_STATES.join(', ')}`);
  }
  const n = limit === undefined ? OUTBOX_LIST_DEFAULT : /^\d{1,4}$/.test(limit) ? Number(limit) : NaN;
  if (!(n >= 1 && n <= OUTBOX_LIST_MAX)) throw new UsageError(`--limit takes a whole number from 1 to ${OUTBOX_LIST_MAX}`);
  if (after !== undefined && !/^[\x21-\x7e]{1,100}$/.test(after)) throw new UsageError('--after takes the cursor a page of outbox list ended with');
  return {
    ...(account !== undefined ? { account } : {}),
    ...(state !== undefined ? { state: state as OutboxEntryState } : {}),
    limit: n,
    ...(after !== undefined ? { after } : {}),
  };
}

/** `where`: the options that named the agent (--config, --socket), repeated in the next page's command. */
async function list(client: AgentClient, query: ListQuery, how: { json: boolean; where: string[] }, io: Io): Promise<number> {
  const { json } = how;
  const r = await client.outboxList(query);
  if (!r.ok) {
    if (json) println(io.stdout, JSON.stringify(r.error, null, 2));
    throw refused(r.status, r.error, undefined, query.account);
  }
  if (json) return println(io.stdout, JSON.stringify({ entries: r.entries, next: r.next }, null, 2)), 0;
  if (r.entries.length === 0) return println(io.stdout, noEntries(query)), 0;
  for (const line of entryTable(r.entries)) println(io.stdout, line);
  if (r.next !== null) println(io.stderr, `pos-token-agent: note: more entries follow; the next page: ${nextPageCommand(query, r.next, how.where)}`);
  return 0;
}

/** What an empty page says: "no queued outbox entries of account shop-2", "no more outbox entries". */
export function noEntries(query: Omit<ListQuery, 'limit'>): string {
  const words = ['no', query.after !== undefined ? 'more' : undefined, query.state, 'outbox entries', query.account !== undefined ? `of account ${query.account}` : undefined];
  return words.filter((w) => w !== undefined).join(' ');
}

/** The command that lists the page after `next`, with the same filters and size, for the same agent (`where`). */
export function nextPageCommand(query: ListQuery, next: string, where: readonly string[] = []): string {
  const args = ['pos-token-agent outbox list', ...where.map(shellWord)];
  if (query.account !== undefined) args.push(`--account ${query.account}`);
  if (query.state !== undefined) args.push(`--state ${query.state}`);
  if (query.limit !== OUTBOX_LIST_DEFAULT) args.push(`--limit ${query.limit}`);
  args.push(`--after ${next}`);
  return args.join(' ');
}

/** The list as a table, a column per field, padded to its widest value; the last error cut to one short line. */
export function entryTable(entries: readonly OutboxEntryBody[], nowMs = Date.now()): string[] {
  const rows = entries.map((e) => [
    e.id,
    e.account,
    e.state,
    String(e.attempts),
    shortTime(e.created_at, nowMs),
    e.last_error === null ? '' : shorten(e.last_error, 60),
  ]);
  const head = ['ID', 'ACCOUNT', 'STATE', 'ATTEMPTS', 'CREATED', 'LAST ERROR'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

async function one(sub: Exclude<Subcommand, 'list'>, client: AgentClient, id: string, json: boolean, io: Io): Promise<number> {
  const call: Record<typeof sub, (id: string) => Promise<OutboxEntryResult>> = {
    show: (x) => client.outboxEntry(x),
    retry: (x) => client.outboxRetry(x),
    cancel: (x) => client.outboxCancel(x),
  };
  const r = await call[sub](id);
  if (!r.ok) {
    if (json) println(io.stdout, JSON.stringify(r.error, null, 2));
    throw refused(r.status, r.error, id);
  }
  if (json) return println(io.stdout, JSON.stringify(r.entry, null, 2)), 0;
  const e = r.entry;
  if (sub === 'show') for (const line of entryLines(e)) println(io.stdout, line);
  else if (sub === 'cancel') println(io.stdout, `${e.id}: cancelled; it will not be sent (pos-token-agent outbox retry ${e.id} queues it again)`);
  else println(io.stdout, `${e.id}: ${e.state} for account ${e.account}; it is sent in its turn, now if it is next (attempts so far: ${e.attempts})`);
  return 0;
}

/** `show`: a line per fact, then the API's last answer and the body as enqueued, pretty-printed. */
export function entryLines(e: OutboxEntryBody): string[] {
  const lines = [
    `id:            ${e.id}`,
    `account:       ${e.account}`,
    `key:           ${e.key ?? '-'}`,
    `request:       ${e.method} ${e.path}`,
    `state:         ${e.state}${e.position !== undefined ? ` (position ${e.position})` : ''}`,
    `attempts:      ${e.attempts}`,
    `created at:    ${e.created_at}`,
    `delivered at:  ${e.delivered_at ?? '-'}`,
    `last error:    ${e.last_error ?? '-'}`,
    `response:      ${e.response ? e.response.status : '-'}`,
  ];
  if (e.response) lines.push(...indented(e.response.body));
  if ('body' in e) lines.push('body:', ...indented(e.body));
  return lines;
}

/** A word as a POSIX shell reads it back: as it is when plain, else single-quoted. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function indented(value: unknown): string[] {
  const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  return (text ?? String(value)).split('\n').map((l) => `  ${l}`);
}

/** The agent's "no": a missing entry or a state that does not allow it is exit 1, with what to do next. */
function refused(status: number, e: ErrorBody, id?: string, account?: string): Error {
  if (e.error === 'unknown_account') {
    const known = e.known_accounts;
    return new UsageError(
      `the agent has no account ${account ?? ''}`.trimEnd() +
        (known === undefined ? '' : known.length ? `; its accounts: ${known.join(', ')}` : '; it has no accounts'),
    );
  }
  if (e.error === 'not_found' && id !== undefined) return new CliError(`no outbox entry ${id} (it may have been pruned; outbox list shows those kept)`);
  if ((e.error === 'not_cancellable' || e.error === 'not_retryable') && 'state' in e && id !== undefined) {
    return new CliError(stateRefusal(e.error, e.state, id));
  }
  if (e.error === 'bad_request') return new UsageError(`the agent refused the request: ${e.message}`);
  return new CliError(describeError(status, e));
}

function stateRefusal(error: 'not_cancellable' | 'not_retryable', state: OutboxEntryState, id: string): string {
  const rule = error === 'not_cancellable' ? 'only a queued entry can be cancelled' : 'only a rejected, cancelled or queued entry can be retried';
  const next: Record<OutboxEntryState, string> = {
    queued: `it waits for its turn; pos-token-agent outbox retry ${id} tries it now`,
    sending: `it is being sent now; see how it went with: pos-token-agent outbox show ${id}`,
    delivered: 'the API accepted it; there is nothing left to do',
    rejected: `the API refused it (see pos-token-agent outbox show ${id}); fix the cause, then: pos-token-agent outbox retry ${id}`,
    cancelled: `it was cancelled already; to send it after all: pos-token-agent outbox retry ${id}`,
  };
  return `entry ${id} is ${state}: ${rule}; ${next[state]}`;
}
