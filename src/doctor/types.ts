/** doctor's report and options (re-exported by index.ts). */
import type { AgentClient } from '../api/index.js';
import type { AuthorityRegistry, HttpClient } from '../authorities/index.js';
import type { StateDeps } from '../state.js';
import type { BoxFacts } from './box.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skipped';

export interface DoctorCheck {
  /** e.g. "config", "state.key", "default.identity", "default.tls", "socket", "agent.config". */
  name: string;
  status: CheckStatus;
  /** What was found (ok, skipped) or what is wrong (warn, fail). */
  detail: string;
  /** What to do about it (warn, fail). */
  fix?: string;
}

export interface DoctorReport {
  ok: boolean;
  checks: DoctorCheck[];
}

export interface DoctorOptions extends StateDeps {
  configPath: string;
  env?: NodeJS.ProcessEnv;
  http?: HttpClient;
  now?: () => number;
  /** Skip the login that checks credentials (it counts against the authority's limits). */
  noLogin?: boolean;
  timeoutMs?: number;
  /** The running agent's client for a socket (the CLI passes the api's); without it the agent is not consulted. */
  agent?: (socket: string) => AgentView;
  /** Whether systemd runs the agent of this config, for the hints; default: looked up on this box. */
  managedBySystemd?: boolean;
  /** The authorities to check accounts against (the built-in ones by default). */
  authorities?: AuthorityRegistry;
  /** The --config the command was given, repeated in the commands the hints suggest. */
  configFlag?: string;
  /** Facts of this box the hints depend on (commands, files, doctor's user); each defaults to this box's. */
  box?: Partial<BoxFacts>;
}

/** What doctor asks a running agent: `/v1/status` (once) and `/v1/health`. */
export type AgentView = Pick<AgentClient, 'status' | 'health'>;

/** Adds a check to the report. */
export type AddCheck = (check: DoctorCheck) => void;
