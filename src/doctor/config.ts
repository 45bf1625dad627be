/**
 * The config checks: the file doctor was given (readable, valid, with accounts), and whether the running agent
 * runs it (`/v1/status` `config`: the SHA-256 of the text it read, its generation, a refused reload).
 */
import type { ConfigStatusBody, StatusBody } from '../api/index.js';
import type { AuthorityRegistry } from '../authorities/index.js';
import { ConfigError, DEFAULT_CONFIG_PATH, type AgentConfig } from '../config/index.js';
import { INSTALL_ROOT } from '../lib/install.js';
import { shellQuote } from '../lib/service.js';
import { findDenial, type BoxFacts } from './box.js';
import { asRoot, permissionDenied, setupCommand, type AgentHints } from './hints.js';
import type { DoctorCheck } from './types.js';
const { dirname, join } = process.getBuiltinModule('node:path');
const { constants } = process.getBuiltinModule('node:fs');

export interface ConfigInput {
  path: string;
  env: NodeJS.ProcessEnv;
  registry: AuthorityRegistry;
  box: BoxFacts;
  /** systemd runs the agent of this config. */
  managed: boolean;
  /** The --config doctor was given. */
  configFlag: string | undefined;
}

/** The config check, and the config when it could be read and is valid. */
export function checkConfig(input: ConfigInput): { config?: AgentConfig; check: DoctorCheck } {
  let config: AgentConfig;
  try {
    config = input.registry.loadConfig(input.path, input.env);
  } catch (err) {
    return { check: { name: 'config', status: 'fail', ...configProblem(err, input) } };
  }
  const names = Object.keys(config.accounts);
  if (names.length) {
    return { config, check: { name: 'config', status: 'ok', detail: `${config.source} is valid: ${names.length} account(s): ${names.join(', ')}` } };
  }
  return { config, check: { name: 'config', status: 'fail', detail: `${config.source} is valid but has no accounts yet`, fix: noAccountsFix(input) } };
}

/**
 * The set-up where it would set up this config (the unit's, at the default place). Where systemd runs the agent only
 * the set-up: `provision` run as root would store credentials the agent's user cannot read. Elsewhere (a config of
 * one's own) the way by hand: the set-up writes the default config, not this one.
 */
function noAccountsFix(input: ConfigInput): string {
  const setup = `run the set-up: ${setupCommand(input.box)}`;
  if (input.managed) return setup;
  if (input.path === DEFAULT_CONFIG_PATH) return `${setup} (or add an account to the config and run pos-token-agent provision)`;
  return `add an account to the config (accounts.NAME: its authority and URL), then store its credentials (run pos-token-agent provision)`;
}

/** Why the config cannot be used, and the fix for that cause: a missing file, a permission, a directory, or its content. */
function configProblem(err: unknown, input: ConfigInput): { detail: string; fix: string } {
  const { path, box } = input;
  const problems = err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
  const detail = `${path}: ${problems}`;
  if (box.stat(path)?.isDirectory()) {
    const inside = join(path, 'config.json');
    return { detail, fix: box.exists(inside) ? `give the config file itself: pos-token-agent doctor --config ${shellQuote(inside)}` : 'give the config file itself, not its directory' };
  }
  let code: string | undefined;
  try {
    box.access(path, constants.R_OK);
  } catch (e) {
    code = (e as NodeJS.ErrnoException).code;
  }
  if (code === 'EACCES' || code === 'EPERM') return permissionDenied('read', path, findDenial(path, 'read', box), box);
  if (code === 'ENOENT' || code === 'ENOTDIR') return { detail, fix: missingConfigFix(input) };
  return { detail, fix: `edit ${path} as listed${configDocs(box)}, then run doctor again` };
}

/** Where this box has the config reference: the release's docs/ (install.sh, the tarball) or the .deb's /usr/share/doc. */
export const CONFIG_DOCS = [join(INSTALL_ROOT, 'docs', 'operations.md'), '/usr/share/doc/pos-token-agent/operations.md.gz'];

function configDocs(box: BoxFacts): string {
  const doc = CONFIG_DOCS.find((p) => box.exists(p));
  return doc ? ` (every key: "Configuration" in ${doc})` : '';
}

/** No file: on a new box (the default place) the set-up writes it; a path given by hand is probably wrong. */
function missingConfigFix(input: ConfigInput): string {
  const { path, box, env } = input;
  if (path === DEFAULT_CONFIG_PATH) return `nothing is set up on this box yet: run the set-up: ${setupCommand(box)}`;
  const given = input.configFlag !== undefined ? '--config' : env.POS_TOKEN_AGENT_CONFIG === path ? 'POS_TOKEN_AGENT_CONFIG' : 'the path';
  const installed = box.exists(DEFAULT_CONFIG_PATH) ? `; this box's config is ${DEFAULT_CONFIG_PATH}` : '';
  return `check ${given}: there is no file ${path}${installed}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Which config the running agent runs

export interface RunningConfigInput {
  /** The config file doctor read, and the SHA-256 of its text. */
  path: string;
  sha256: string | undefined;
  /** When the file was last written (ms), to tell whether it changed after a refused reload. */
  modifiedAt: number | undefined;
  /** The running agent's `/v1/status`. */
  status: StatusBody;
  hints: AgentHints;
  box: BoxFacts;
  /** systemd runs the agent (as its own user, reading the config through its directory's group). */
  managed: boolean;
}

/**
 * Whether the running agent runs the config file as it is now. A difference is a warning, not a failure: the agent
 * serves with the config it has, and the set-up runs doctor before it reloads the agent (a failure would stop it
 * before the reload that fixes it).
 */
export function runningConfigCheck(input: RunningConfigInput): DoctorCheck {
  const name = 'agent.config';
  const running = input.status.config;
  if (!running) {
    return {
      name,
      status: 'warn',
      detail: `the running agent (version ${input.status.version}) does not report which config it runs: doctor cannot tell whether it runs ${input.path}`,
      fix: `restart it, so that it runs ${input.path} and this version, which reports it: ${input.hints.restart}`,
    };
  }
  if (running.sha256 === null || input.sha256 === undefined) {
    return { name, status: 'skipped', detail: `not checked: the running agent's config (${running.path}) was not read from a file` };
  }
  const loaded = `generation ${running.generation}, loaded ${running.loaded_at}`;
  if (running.sha256 === input.sha256) {
    const from = running.path === input.path ? '' : `, read from ${running.path}`;
    const refused = running.reload_error ? `; a later reload, at ${running.reload_error.at}, was refused, and the file is back to what runs` : '';
    const pending = running.pending_restart ?? [];
    if (pending.length > 0) {
      return {
        name,
        status: 'warn',
        detail: `the agent runs this config (${loaded}${from}) except ${pending.join(', ')}, which it reads only at start: it still runs the values it started with`,
        fix: `restart the agent to apply ${pending.join(', ')}: ${input.hints.restart}`,
      };
    }
    return { name, status: 'ok', detail: `the agent runs this config (${loaded}${from})${refused}` };
  }
  if (running.path !== input.path) {
    return {
      name,
      status: 'warn',
      detail: `the agent answering on this config's socket runs ${running.path} (${loaded}), not ${input.path}, and they differ`,
      fix: `check the config you meant: pos-token-agent doctor --config ${shellQuote(running.path)}; or start the agent with ${input.path}: ${input.hints.restart}`,
    };
  }
  return { name, status: 'warn', ...changedConfig(input, running, loaded) };
}

/** The file differs from what the agent runs: not reloaded yet, or a reload was refused (and maybe fixed since). */
function changedConfig(input: RunningConfigInput, running: ConfigStatusBody, loaded: string): { detail: string; fix: string } {
  const { path, hints } = input;
  const runs = `the running agent runs an earlier version of ${path} (${loaded})`;
  const reload = `reload the agent to apply it: ${hints.reload} (${hints.restartNote})`;
  const refused = running.reload_error;
  if (!refused) return { detail: `${path} has changed since the agent loaded it: ${runs}`, fix: reload };
  const problems = refused.problems.join('; ');
  const at = Date.parse(refused.at);
  if (input.modifiedAt !== undefined && !Number.isNaN(at) && input.modifiedAt > at) {
    return { detail: `${runs}; its last reload, at ${refused.at}, was refused (${problems}), and ${path} has changed since`, fix: reload };
  }
  const detail = `${runs}; its last reload, at ${refused.at}, was refused: ${problems}`;
  if (refused.problems.some((p) => /permission denied/.test(p))) return { detail, fix: readableAgain(input) };
  return { detail, fix: `fix what the refused reload names, then reload: ${hints.reload}` };
}

/**
 * The agent's user could not read the file. Under systemd: the owner and mode the set-up leaves (root, the group of
 * its directory, which is the agent's, 0640); else readable by whoever runs the agent.
 */
function readableAgain(input: RunningConfigInput): string {
  const { path, box, hints } = input;
  if (!input.managed) return `make ${path} readable by the user that runs the agent, then reload: ${hints.reload}`;
  const dir = box.stat(dirname(path));
  const group = dir ? box.groupName(dir.gid) : undefined;
  const own = group ? `${asRoot(`chown root:${group} ${shellQuote(path)}`, box)} and ` : '';
  return `make ${path} readable by the agent's user again (${own}${asRoot(`chmod 0640 ${shellQuote(path)}`, box)}), then reload: ${hints.reload}`;
}
