/**
 * The state checks: the state directory (there, enterable, owner-only), the key and the database's modes, the
 * machine id binding, the database (opens, integrity), and outbox.db. Doctor only looks: it never creates the state
 * directory, the database or the key (run as root, it would leave files the agent's user cannot open).
 */
import type { AgentConfig } from '../config/index.js';
import { stateAccess, type StateAccess, type StateDeps } from '../state.js';
import { DB_FILE, OUTBOX_FILE, inspectOutbox, openStore, SecretKeyError, StoreError, type OutboxInspection, type Store } from '../store/index.js';
import { findDenial, type BoxFacts, type FileStat } from './box.js';
import { asRoot, machineIdHint, permissionDenied, provisionHint, SETUP_COMMAND, type ProvisionContext } from './hints.js';
import type { DoctorCheck } from './types.js';
const { constants } = process.getBuiltinModule('node:fs');
const { dirname, join } = process.getBuiltinModule('node:path');

/** The unit's user and state directory (systemd/pos-token-agent.service, StateDirectory=). */
const UNIT_USER = 'pos-token-agent';
const UNIT_STATE_DIR = '/var/lib/pos-token-agent';

export interface StateContext extends ProvisionContext {
  deps: StateDeps;
}

/** Without a store: what the credentials checks say instead. */
export interface NoStore {
  status: 'fail' | 'skipped';
  why: string;
}

export interface StateChecked {
  checks: DoctorCheck[];
  store?: Store;
  noStore: NoStore;
}

export async function checkState(config: AgentConfig, ctx: StateContext): Promise<StateChecked> {
  const first = Object.keys(config.accounts)[0] ?? 'default';
  const access = await stateAccess(config, ctx.deps);
  const dir = directoryCheck(config.stateDir, first, ctx);
  const machineId: DoctorCheck[] = access.machineIdProblem
    ? [{
        name: 'state.machine-id',
        status: 'warn',
        detail: `secrets are sealed with the key alone, not bound to this machine: ${access.machineIdProblem}`,
        fix: `make sure /etc/machine-id holds this box's id (${machineIdHint(ctx.box)}), then re-provision every account (${provisionHint(first, ctx)})`,
      }]
    : [];
  if (!dir.stat) {
    const why = dir.denied ? 'doctor may not look inside the state directory' : 'the state directory does not exist';
    const noStore: NoStore = { status: 'skipped', why };
    return { checks: [dir.check, ...machineId, { name: 'state.database', status: 'skipped', detail: `not checked: ${why}` }], noStore };
  }
  // Modes are read before the database is opened: opening it tightens the database file's mode.
  const files = fileChecks(config.stateDir, dir.stat, access, first, ctx);
  const state = openState(config, access, first, ctx);
  if (state.keyLost) {
    const i = files.findIndex((c) => c.name === 'state.key' && c.status !== 'fail');
    if (i >= 0) files[i] = state.keyLost;
  }
  return { checks: [dir.check, ...files, ...machineId, state.check], ...(state.store ? { store: state.store } : {}), noStore: state.noStore };
}

/** The state directory: there, enterable by doctor, and closed to other users. `stat` only when it can be used. */
function directoryCheck(dir: string, account: string, ctx: StateContext): { check: DoctorCheck; stat?: FileStat; denied?: boolean } {
  const name = 'state.directory';
  try {
    ctx.box.access(dir, constants.R_OK | constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      return { check: { name, status: 'fail', ...permissionDenied('look inside', dir, findDenial(dir, 'enter', ctx.box), ctx.box) }, denied: true };
    }
    return { check: { name, status: 'fail', detail: `${dir} does not exist`, fix: missingDirectoryFix(dir, account, ctx) } };
  }
  const st = ctx.box.stat(dir);
  if (!st) return { check: { name, status: 'fail', detail: `${dir} does not exist`, fix: missingDirectoryFix(dir, account, ctx) } };
  return {
    stat: st,
    check:
      (st.mode & 0o077) === 0
        ? { name, status: 'ok', detail: `${dir} mode ${modeOf(st)}, owner uid ${st.uid}` }
        : { name, status: 'fail', detail: `${dir} has mode ${modeOf(st)}: other users can look inside`, fix: `chmod 0700 ${dir}` },
  };
}

/**
 * Who makes the state directory: under systemd, tmpfiles.d (as the package does) or the service's StateDirectory=
 * for the unit's own directory, else a directory owned by the unit's user; by hand, provision (as the user that
 * runs the agent).
 */
function missingDirectoryFix(dir: string, account: string, ctx: StateContext): string {
  const { box } = ctx;
  if (!ctx.managed) return `run: pos-token-agent provision --account ${account} (it makes ${dir}, mode 0700)`;
  if (dir !== UNIT_STATE_DIR) return `make it, owned by the agent's user: ${asRoot(`install -d -m 0700 -o ${UNIT_USER} -g ${UNIT_USER} ${dir}`, box)}`;
  const tmpfiles = ['/etc/tmpfiles.d', '/usr/lib/tmpfiles.d', '/lib/tmpfiles.d'].some((d) => box.exists(`${d}/pos-token-agent.conf`));
  if (tmpfiles && box.command('systemd-tmpfiles')) return `make it as the package does: ${asRoot('systemd-tmpfiles --create pos-token-agent.conf', box)}`;
  return `start the service, whose StateDirectory= makes it: ${asRoot('systemctl start pos-token-agent', box)}`;
}

function modeOf(s: FileStat): string {
  return (s.mode & 0o777).toString(8).padStart(4, '0');
}

/** The key (there, 0600, owned as the directory) and the database file (0600). */
function fileChecks(dir: string, dirStat: FileStat, access: StateAccess, account: string, ctx: StateContext): DoctorCheck[] {
  const out: DoctorCheck[] = [];
  const { keyFile, keySource } = access;
  const keyStat = ctx.box.stat(keyFile);
  if (!keyStat) {
    out.push({
      name: 'state.key',
      status: 'warn',
      detail: `no ${keySource} at ${keyFile} yet (made at the first provisioning)`,
      fix: `run: ${provisionHint(account, ctx)}`,
    });
  } else if (keySource === 'key file' && ((keyStat.mode & 0o077) !== 0 || keyStat.uid !== dirStat.uid)) {
    out.push({
      name: 'state.key',
      status: 'fail',
      detail: `${keyFile} has mode ${modeOf(keyStat)} and owner uid ${keyStat.uid}; it must be 0600 and owned by the state directory's owner (uid ${dirStat.uid})`,
      fix: `chmod 0600 ${keyFile} && chown ${dirStat.uid} ${keyFile}`,
    });
  } else {
    out.push({ name: 'state.key', status: 'ok', detail: `${keySource} ${keyFile}, mode ${modeOf(keyStat)}` });
  }
  const db = join(dir, DB_FILE);
  const dbStat = ctx.box.stat(db);
  if (dbStat && (dbStat.mode & 0o077) !== 0) {
    out.push({ name: 'state.permissions', status: 'fail', detail: `${db} has mode ${modeOf(dbStat)}`, fix: `chmod 0600 ${db}*` });
  }
  return out;
}

interface StateOpened {
  store?: Store;
  noStore: NoStore;
  check: DoctorCheck;
  /** Replaces the key check when the database was sealed with a key that is gone. */
  keyLost?: DoctorCheck;
}

/** Opens the state database without creating anything: no directory, database or key is made here. */
function openState(config: AgentConfig, access: StateAccess, first: string, ctx: StateContext): StateOpened {
  const dbPath = join(config.stateDir, DB_FILE);
  const provision = provisionHint(first, ctx);
  if (!ctx.box.exists(dbPath)) {
    return {
      noStore: { status: 'fail', why: 'nothing has been provisioned on this box (no state database)' },
      check: { name: 'state.database', status: 'warn', detail: `no state database at ${dbPath} yet (made at the first provisioning)`, fix: `run: ${provision}` },
    };
  }
  const noStore: NoStore = { status: 'skipped', why: 'the state database cannot be opened' };
  let store: Store;
  try {
    store = openStore({ ...access.options, createKey: false });
  } catch (err) {
    const check: DoctorCheck = { name: 'state.database', status: 'fail', ...stateFailure(err, dbPath, first, ctx) };
    if (!(err instanceof SecretKeyError && err.kind === 'missing' && access.keySource === 'key file')) return { noStore, check };
    const detail = `${access.keyFile} is missing, but ${dbPath} was sealed with it: the stored credentials cannot be read`;
    const fix = `restore ${access.keyFile} from a backup (mode 0600, owned by the state directory's owner), or re-provision every account (${provision})`;
    return { noStore, check, keyLost: { name: 'state.key', status: 'fail', detail, fix } };
  }
  const integrity = store.integrityCheck();
  if (integrity === 'ok') return { store, noStore, check: { name: 'state.database', status: 'ok', detail: `${store.path} opens; integrity_check ok` } };
  return {
    store,
    noStore,
    check: {
      name: 'state.database',
      status: 'fail',
      detail: `${store.path}: integrity_check says ${integrity.slice(0, 200)}`,
      fix: `stop the agent, move the database aside and re-provision every account (${provision})`,
    },
  };
}

/** The code of an error or of its cause (a StoreError keeps SQLite's or the file system's). */
function codeOf(err: unknown): string | undefined {
  const own = (err as { code?: unknown } | undefined)?.code;
  const cause = (err as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return [cause, own].find((c): c is string => typeof c === 'string' && c !== 'ERR_STORE');
}

const PERMISSION_CODES = new Set(['EACCES', 'EPERM', 'SQLITE_CANTOPEN', 'SQLITE_PERM', 'SQLITE_READONLY', 'SQLITE_READONLY_DIRECTORY']);

/** A database (or its key) that cannot be used: the fix for its cause. Also for the credentials check. */
export function stateFailure(err: unknown, path: string, first: string, ctx: ProvisionContext): { detail: string; fix: string } {
  const provision = provisionHint(first, ctx);
  if (err instanceof SecretKeyError && err.kind === 'credential_absent') {
    const setup = ctx.box.command(SETUP_COMMAND) ? SETUP_COMMAND : 'the set-up (pos-token-agent setup)';
    return {
      detail: err.message,
      fix: `run doctor in the service's context, as ${setup} does (it passes the unit's LoadCredentialEncrypted= to systemd-run); nothing needs re-provisioning`,
    };
  }
  if (err instanceof SecretKeyError) {
    const fresh = err.kind === 'missing' && /no secret key yet/.test(err.message);
    return { detail: err.message, fix: fresh ? `run: ${provision}` : `re-provision every account (${provision}); the unusable database is moved aside, not deleted` };
  }
  const code = codeOf(err);
  if (code !== undefined && PERMISSION_CODES.has(code) && ctx.box.uid !== 0) {
    return permissionDenied('open', path, findDenial(path, 'read', ctx.box), ctx.box);
  }
  if (code === 'SQLITE_BUSY') return { detail: (err as Error).message, fix: 'another process holds the database locked: run doctor again in a minute' };
  if (err instanceof StoreError) {
    return { detail: err.message, fix: `move ${path} aside and re-provision (${provision}); keep the old file for a support case` };
  }
  const dir = dirname(path);
  return { detail: `${path}: ${(err as Error).message}`, fix: `check that ${dir} and its files belong to the user that runs the agent (ls -la ${dir})` };
}

/**
 * outbox.db, when there is one: readable and sound, what it holds, and whether an account's oldest waiting entry
 * is older than outbox.alertAfterS (then /v1/health says outbox_stalled). Read only: see inspectOutbox.
 */
export function outboxCheck(config: AgentConfig, nowMs: number, box: BoxFacts): DoctorCheck | undefined {
  const name = 'state.outbox';
  let found: OutboxInspection | undefined;
  try {
    found = inspectOutbox(config.stateDir);
  } catch (err) {
    const code = codeOf(err);
    const path = join(config.stateDir, OUTBOX_FILE);
    if (code !== undefined && PERMISSION_CODES.has(code) && box.uid !== 0) {
      return { name, status: 'fail', ...permissionDenied('open', path, findDenial(path, 'read', box), box) };
    }
    return {
      name,
      status: 'fail',
      detail: (err as Error).message,
      fix: 'stop the agent and keep a copy of outbox.db and its -wal file for a support case: it may hold receipts not yet delivered',
    };
  }
  if (!found) return undefined;
  if (found.integrity !== 'ok') {
    return {
      name,
      status: 'fail',
      detail: `${found.path}: integrity_check says ${found.integrity.slice(0, 200)}`,
      fix: 'stop the agent and keep a copy of outbox.db and its -wal file for a support case: it may hold receipts not yet delivered',
    };
  }
  return outboxContents(found, config, nowMs);
}

function outboxContents(found: OutboxInspection, config: AgentConfig, nowMs: number): DoctorCheck {
  const name = 'state.outbox';
  const b = found.byState;
  const waiting = Object.entries(found.waiting);
  const total = b.queued + b.sending;
  const oldest = waiting.reduce<number | null>((m, [, w]) => (m === null || w.oldestAt < m ? w.oldestAt : m), null);
  const ageS = (at: number): number => Math.max(0, Math.floor((nowMs - at) / 1000));
  const held = `${total} waiting${oldest === null ? '' : ` (oldest ${formatAge(ageS(oldest))})`}, ${b.delivered} delivered, ${b.rejected} rejected, ${b.cancelled} cancelled`;
  const late = waiting.filter(([, w]) => nowMs - w.oldestAt > config.outbox.alertAfterMs).map(([account]) => account);
  if (late.length === 0) return { name, status: 'ok', detail: `${found.path}: integrity_check ok; ${held}` };
  return {
    name,
    status: 'warn',
    detail:
      `${found.path}: entries of ${late.join(', ')} have waited longer than outbox.alertAfterS (${formatAge(config.outbox.alertAfterMs / 1000)}): ${held}`,
    fix:
      'see what waits and its last error: pos-token-agent outbox list --state queued; check the api checks above ' +
      `(${late.map((a) => `${a}.api.*`).join(', ')}) and pos-token-agent status (each account's outbox line)`,
  };
}

/** An age for people: "45 s", "12 min", "3 h", "2 d". */
function formatAge(s: number): string {
  if (s < 120) return `${Math.floor(s)} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  if (s < 172_800) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86_400)} d`;
}
