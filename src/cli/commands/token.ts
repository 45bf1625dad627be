import { askAgent, CliError, configOption, type Io, parse, println, socketPath, UsageError } from '../common.js';

export const tokenHelp = `Usage: pos-token-agent token [--account NAME] [--min-ttl S] [--json] [--socket PATH | --config FILE]

Asks the running agent for a token with at least S seconds left (default 60) and prints
the bare token, or with --json the whole answer.

The socket is --socket, else the config's; a user who may not read the config (till
software) gets the default /run/pos-token-agent/agent.sock.`;

export const statusHelp = `Usage: pos-token-agent status [--json] [--socket PATH | --config FILE]

Shows what the running agent reports: each account's state, expiry, last login and last error.
Exits 1 when an account holds no usable token.

The socket is --socket, else the config's; a user who may not read the config (till
software) gets the default /run/pos-token-agent/agent.sock.`;

const socketOptions = { ...configOption, socket: { type: 'string' }, json: { type: 'boolean' } } as const;

export async function tokenCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { ...socketOptions, account: { type: 'string', short: 'a' }, 'min-ttl': { type: 'string' } });
  if (values.help) return println(io.stdout, tokenHelp), 0;
  const q = new URLSearchParams();
  if (values.account) q.set('account', values.account);
  if (values['min-ttl'] !== undefined) {
    if (!/^\d+$/.test(values['min-ttl'])) throw new UsageError('--min-ttl takes whole seconds');
    q.set('min_ttl', values['min-ttl']);
  }
  const res = await askAgent(socketPath(values, io.env), 'GET', `/v1/token${q.size ? `?${q}` : ''}`);
  const body = parseBody(res.body);
  if (res.status === 200) {
    println(io.stdout, values.json ? JSON.stringify(body, null, 2) : String(body.access_token));
    return 0;
  }
  if (values.json) println(io.stdout, JSON.stringify(body, null, 2));
  throw new CliError(describeError(res.status, body));
}

export async function statusCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, socketOptions);
  if (values.help) return println(io.stdout, statusHelp), 0;
  const res = await askAgent(socketPath(values, io.env), 'GET', '/v1/status');
  const body = parseBody(res.body);
  if (res.status !== 200) throw new CliError(describeError(res.status, body));
  const accounts = (body.accounts ?? {}) as Record<string, Record<string, unknown>>;
  const healthy = Object.values(accounts).every((a) => a.state === 'fresh' || a.state === 'stale');
  if (values.json) {
    println(io.stdout, JSON.stringify(body, null, 2));
    return healthy ? 0 : 1;
  }
  println(io.stdout, `pos-token-agent ${String(body.version)}, up ${String(body.uptime_s)} s`);
  for (const [name, a] of Object.entries(accounts)) {
    const err = a.last_error as { reason: string; message: string; at: string } | null;
    println(io.stdout, `\n${name} (${String(a.authority)}): ${String(a.state)}`);
    println(io.stdout, `  expires at:  ${String(a.expires_at ?? '-')}`);
    println(io.stdout, `  last login:  ${String(a.last_login_at ?? '-')}`);
    if (err) println(io.stdout, `  last error:  ${err.reason} at ${err.at}: ${err.message}`);
    if (a.next_attempt_in_s) println(io.stdout, `  next try in: ${String(a.next_attempt_in_s)} s`);
  }
  return healthy ? 0 : 1;
}

function parseBody(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function describeError(status: number, body: Record<string, unknown>): string {
  const what = [body.error, body.reason].filter(Boolean).join(': ');
  const retry = body.retry_after ? ` (retry in ${String(body.retry_after)} s)` : '';
  return `the agent answered ${status}${what ? ` ${what}` : ''}${body.message ? ` - ${String(body.message)}` : ''}${retry}`;
}
