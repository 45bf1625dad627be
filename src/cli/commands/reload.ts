/**
 * `pos-token-agent reload --pid PID`: what the unit's ExecReload runs. It sends SIGHUP to the agent and waits
 * until `/v1/status` says whether the config was taken (a new generation) or refused, so that
 * `systemctl reload` fails on a config the agent refused, and needs nothing the package does not bring
 * (`/bin/kill` is procps's, which a minimal Debian does not have).
 */
import type { ConfigStatusBody, StatusBody } from '../../api/index.js';
import { agentClient, CliError, configOption, type Io, parse, println, UsageError } from '../common.js';

export const reloadHelp = `Usage: pos-token-agent reload --pid PID [--timeout S] [--socket PATH | --config FILE]

Asks the running agent to read its config again, and waits for its answer: sends SIGHUP to
PID (the agent; the unit's ExecReload passes $MAINPID), then watches /v1/status until the
agent reports a new config generation (exit 0) or a refused reload (exit 1, the problems on
stderr; the agent keeps the config it runs). "systemctl reload pos-token-agent" runs this.
Exit 1 too when the agent does not answer within S seconds (default 60).`;

const DEFAULT_TIMEOUT_S = 60;
const POLL_MS = 200;

export type ReloadOutcome =
  | { kind: 'taken'; config: ConfigStatusBody }
  | { kind: 'refused'; problems: string[] }
  | { kind: 'pending' };

/**
 * What `now` says about the reload asked for after `before` was read: taken once the generation has moved on,
 * refused once a reload error newer than `before`'s is reported, else still pending.
 */
export function reloadOutcome(before: ConfigStatusBody, now: ConfigStatusBody): ReloadOutcome {
  if (now.generation > before.generation) return { kind: 'taken', config: now };
  if (now.reload_error && now.reload_error.at !== before.reload_error?.at) return { kind: 'refused', problems: now.reload_error.problems };
  return { kind: 'pending' };
}

export async function reloadCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { ...configOption, socket: { type: 'string' }, pid: { type: 'string' }, timeout: { type: 'string' } });
  if (values.help) return println(io.stdout, reloadHelp), 0;
  if (!/^[1-9]\d{0,9}$/.test(values.pid ?? '')) throw new UsageError("--pid takes the agent's process id (the unit's ExecReload passes $MAINPID)");
  const timeoutS = values.timeout === undefined ? DEFAULT_TIMEOUT_S : Number(values.timeout);
  if (!Number.isInteger(timeoutS) || timeoutS < 1 || timeoutS > 600) throw new UsageError('--timeout takes whole seconds from 1 to 600');
  const client = agentClient(values, io, 5_000);
  const before = (await client.status()).config;
  signal(Number(values.pid));
  if (!before) {
    println(io.stdout, 'reload: SIGHUP sent; this agent does not report its config, so whether it took it is not known');
    return 0;
  }
  const outcome = await waitForOutcome(() => client.status(), before, timeoutS * 1000);
  if (outcome.kind === 'taken') {
    println(io.stdout, `reload: config generation ${outcome.config.generation} taken (${outcome.config.path}, sha256 ${outcome.config.sha256 ?? '-'})`);
    return 0;
  }
  if (outcome.kind === 'refused') {
    println(io.stderr, `reload: the agent refused the config and keeps running the one it had:\n  - ${outcome.problems.join('\n  - ')}`);
    return 1;
  }
  println(io.stderr, `reload: SIGHUP sent, but the agent reported neither a new config nor a refusal within ${timeoutS} s`);
  return 1;
}

function signal(pid: number): void {
  try {
    process.kill(pid, 'SIGHUP');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`cannot signal process ${pid} (${code === 'ESRCH' ? 'no such process' : code === 'EPERM' ? 'not permitted' : String(code)})`);
  }
}

/** Polls the status until the reload is taken or refused, at most `timeoutMs`; a status that fails is asked again. */
async function waitForOutcome(status: () => Promise<StatusBody>, before: ConfigStatusBody, timeoutMs: number): Promise<ReloadOutcome> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    const now = await status().catch(() => undefined);
    const outcome = now?.config ? reloadOutcome(before, now.config) : { kind: 'pending' as const };
    if (outcome.kind !== 'pending') return outcome;
  }
  return { kind: 'pending' };
}
