/**
 * The running agent, as doctor sees it: its socket (there, a socket, closed to other users, answering), what it says
 * of each account, and which config it runs. `/v1/status` is asked once and shared by every check that reads it.
 */
import type { Stats } from 'node:fs';
import { AgentClientError, type HealthBody, type StatusBody, type AccountStatusBody } from '../api/index.js';
import type { AgentConfig } from '../config/index.js';
import { UNIT_NAME } from '../lib/service.js';
import { findDenial, type BoxFacts } from './box.js';
import { runningConfigCheck } from './config.js';
import { asRoot, CLIENT_GROUP, permissionDenied, type AgentHints } from './hints.js';
import type { AgentView, DoctorCheck } from './types.js';
const { lstatSync, statSync } = process.getBuiltinModule('node:fs');

export interface RunningAgent {
  /** `/v1/status`, asked once; undefined when the agent did not answer it. */
  status(): Promise<StatusBody | undefined>;
  health(): Promise<HealthBody>;
}

/** The agent on `socket`, through the client doctor was given; undefined without one (the agent is not consulted). */
export function runningAgent(socket: string, view: ((socket: string) => AgentView) | undefined): RunningAgent | undefined {
  if (!view) return undefined;
  const client = view(socket);
  let status: Promise<StatusBody | undefined> | undefined;
  return {
    status: () => (status ??= client.status().catch(() => undefined)),
    health: () => client.health(),
  };
}

/** What the running agent says of an account; undefined when no agent answers or it has no such account. */
export async function agentAccount(agent: RunningAgent | undefined, account: string): Promise<AccountStatusBody | undefined> {
  const status = await agent?.status();
  return status && Object.hasOwn(status.accounts, account) ? status.accounts[account] : undefined;
}

export interface SocketContext {
  agent: RunningAgent | undefined;
  hints: AgentHints;
  box: BoxFacts;
  /** systemd runs the agent of this config (then systemd owns the socket and its mode). */
  managed: boolean;
}

/** The socket check, then (when the agent answers) which config it runs. */
export async function agentChecks(config: AgentConfig, ctx: SocketContext): Promise<DoctorCheck[]> {
  const socket = await socketCheck(config.socket, ctx);
  if (!socket.answers || !ctx.agent) return [socket.check];
  const status = await ctx.agent.status();
  if (!status) {
    return [socket.check, { name: 'agent.config', status: 'skipped', detail: 'not checked: the agent did not answer /v1/status' }];
  }
  const path = config.source;
  let modifiedAt: number | undefined;
  try {
    modifiedAt = statSync(path).mtimeMs;
  } catch {
    modifiedAt = undefined;
  }
  const drift = runningConfigCheck({ path, sha256: config.sha256, modifiedAt, status, hints: ctx.hints, box: ctx.box, managed: ctx.managed });
  return [socket.check, drift];
}

async function socketCheck(socket: string, ctx: SocketContext): Promise<{ check: DoctorCheck; answers?: boolean }> {
  const name = 'socket';
  let st: Stats;
  try {
    st = lstatSync(socket);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      return { check: { name, status: 'fail', ...permissionDenied('reach', socket, findDenial(socket, 'connect', ctx.box), ctx.box, { joinGroup: CLIENT_GROUP }) } };
    }
    return { check: { name, status: 'warn', detail: `nothing at ${socket}: the agent is not running`, fix: ctx.hints.enable } };
  }
  if (!st.isSocket()) {
    return { check: { name, status: 'fail', detail: `${socket} is not a socket`, fix: notSocketFix(socket, ctx) } };
  }
  const mode = st.mode & 0o777;
  const shown = mode.toString(8).padStart(4, '0');
  if ((mode & 0o007) !== 0) {
    return { check: { name, status: 'fail', detail: `${socket} has mode ${shown}: any user on the box can take tokens`, fix: socketModeFix(ctx) } };
  }
  if (!ctx.agent) return { check: { name, status: 'ok', detail: `${socket} is a socket with mode ${shown}` } };
  try {
    const health = await ctx.agent.health();
    const check: DoctorCheck =
      health.status === 'ok'
        ? { name, status: 'ok', detail: `${socket} (mode ${shown}) answers: every account has a usable token` }
        : {
            name,
            status: 'warn',
            detail: `${socket} answers, but not every account has a usable token: ${health.failing.join(', ').slice(0, 200)}`,
            fix: 'see the account checks above and `pos-token-agent status`',
          };
    return { check, answers: true };
  } catch (err) {
    return { check: silentSocket(socket, err, ctx) };
  }
}

/** A socket file that does not answer: no permission, no agent behind it (a stale file), or an agent that hangs. */
function silentSocket(socket: string, err: unknown, ctx: SocketContext): DoctorCheck {
  const name = 'socket';
  const code = err instanceof AgentClientError ? err.code : undefined;
  if (code === 'permission_denied') {
    return { name, status: 'fail', ...permissionDenied('connect to', socket, findDenial(socket, 'connect', ctx.box), ctx.box, { joinGroup: CLIENT_GROUP }) };
  }
  if (code === 'not_running') {
    return { name, status: 'warn', detail: `${socket} is there, but no agent listens on it: the agent is not running`, fix: ctx.hints.enable };
  }
  return { name, status: 'fail', detail: `${socket} exists but does not answer: ${(err as Error).message}`, fix: ctx.hints.restart };
}

/** Under systemd the socket unit makes the socket; by hand the agent makes it (and removes a stale one), not a file. */
function notSocketFix(socket: string, ctx: SocketContext): string {
  if (!ctx.managed) return `remove ${socket} (rm ${socket}), then ${ctx.hints.restart}`;
  return `remove ${socket} (${asRoot(`rm ${socket}`, ctx.box)}), then ${asRoot(`systemctl restart ${UNIT_NAME}.socket ${UNIT_NAME}.service`, ctx.box)}`;
}

/** Under systemd the socket unit sets the mode (SocketMode=); by hand the agent sets 0660 when it makes the socket. */
function socketModeFix(ctx: SocketContext): string {
  if (!ctx.managed) return `the agent makes its socket with mode 0660: ${ctx.hints.restart}`;
  return (
    `set SocketMode=0660 in ${UNIT_NAME}.socket (systemctl cat ${UNIT_NAME}.socket shows it and its drop-ins), then ` +
    `${asRoot('systemctl daemon-reload', ctx.box)} and ${asRoot(`systemctl restart ${UNIT_NAME}.socket ${UNIT_NAME}.service`, ctx.box)}`
  );
}
