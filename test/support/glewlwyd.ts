/**
 * A real glewlwyd (Debian's `glewlwyd` package, 2.7) for tests: its own SQLite database in a temporary
 * directory, made from the package's schema, listening on 127.0.0.1 on a free port, with the OIDC plugin's
 * client-credentials grant enabled and the clients and scopes a test asks for, all set up through its admin
 * API (the package's initial admin user). Nothing of the system's glewlwyd configuration or service is used.
 *
 * glewlwyd reads HTTP Basic as RFC 7617 has it (base64, split at the first colon, no form-decoding), and
 * answers a wrong secret, an unknown client, a disallowed auth method and a missing scope with an empty 403.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { openDatabase } from '../../src/store/sqlite.js';

/** Where Debian's package puts what is needed. */
const SCHEMAS = [
  '/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3',
  '/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz',
];
const MODULES = '/usr/lib/glewlwyd';
const ADMIN = { username: 'admin', password: 'password' }; // the package schema's initial administrator
const PLUGIN = 'oidc';

export interface GlewlwydClient {
  clientId: string;
  secret: string;
  scopes: string[];
  /** Default ['client_credentials']. */
  grants?: string[];
  /** Default both client_secret_basic and client_secret_post. */
  authMethods?: Array<'client_secret_basic' | 'client_secret_post'>;
}

export interface GlewlwydOptions {
  clients: GlewlwydClient[];
  scopes: string[];
  /** RFC 8707 resources allowed per scope (the plugin's resource-scope). */
  resources?: Record<string, string[]>;
  accessTokenTtlS?: number;
}

export interface Glewlwyd {
  /** The client-credentials token endpoint. */
  tokenUrl: string;
  /** Everything glewlwyd logged (console mode). */
  log(): string;
  stop(): Promise<void>;
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Why a real glewlwyd cannot run here, or undefined when it can. */
export function glewlwydMissing(): string | undefined {
  if (!onPath('glewlwyd')) return 'glewlwyd is not installed (Debian: apt-get install glewlwyd; .ci/run installs it)';
  if (!SCHEMAS.some((p) => existsSync(p))) return `glewlwyd's SQLite schema is missing (looked for ${SCHEMAS.join(', ')})`;
  if (!existsSync(join(MODULES, 'plugin', 'libprotocol_oidc.so'))) return `glewlwyd's OIDC plugin is missing in ${MODULES}/plugin`;
  return undefined;
}

function schema(): string {
  const path = SCHEMAS.find((p) => existsSync(p))!;
  const raw = readFileSync(path);
  return (path.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function config(port: number, db: string): string {
  return `port=${port}
bind_address="127.0.0.1"
external_url="http://127.0.0.1:${port}"
login_url="login.html"
api_prefix="api"
log_mode="console"
log_level="INFO"
cookie_secure=0
session_expiration=3600
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
login_api_enabled=true
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="${MODULES}/user"
client_module_path="${MODULES}/client"
user_auth_scheme_module_path="${MODULES}/scheme"
plugin_module_path="${MODULES}/plugin"
hash_algorithm="SHA512"
database = { type = "sqlite3"; path = "${db}"; };
`;
}

/** Starts glewlwyd and sets it up; throws with its log when it does not come up. */
export async function startGlewlwyd(options: GlewlwydOptions): Promise<Glewlwyd> {
  const missing = glewlwydMissing();
  if (missing) throw new Error(missing);
  const dir = mkdtempSync(join(tmpdir(), 'pta-glewlwyd-'));
  const dbPath = join(dir, 'glewlwyd.db');
  const db = openDatabase(dbPath);
  try {
    db.exec(schema());
  } finally {
    db.close();
  }
  let output = '';
  let child: ChildProcess | undefined;
  let base = '';
  // A port taken between freePort() and glewlwyd's bind: try another.
  for (let attempt = 0; attempt < 3 && !base; attempt++) {
    const port = await freePort();
    writeFileSync(join(dir, 'glewlwyd.conf'), config(port, dbPath));
    const started = spawn(onPath('glewlwyd')!, ['--config-file', join(dir, 'glewlwyd.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    started.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    started.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => started.once('exit', () => resolve()));
    const up = await Promise.race([
      (async () => {
        for (let i = 0; i < 200; i++) {
          try {
            await fetch(`http://127.0.0.1:${port}/api/`);
            return true; // any HTTP answer (a 404 here) means it listens
          } catch {
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        return false;
      })(),
      exited.then(() => false),
    ]);
    if (up && started.exitCode === null) {
      child = started;
      base = `http://127.0.0.1:${port}/api`;
    } else {
      started.kill('SIGKILL');
      await exited;
    }
  }
  const stop = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) => child!.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child!.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  if (!child) {
    await stop();
    throw new Error(`glewlwyd did not start:\n${output}`);
  }

  try {
    const login = await fetch(`${base}/auth/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ADMIN),
    });
    const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    if (login.status !== 200 || !cookie) throw new Error(`admin login answered ${login.status}`);
    const admin = async (path: string, body: unknown): Promise<void> => {
      const r = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie },
        body: JSON.stringify(body),
      });
      if (r.status !== 200) throw new Error(`POST ${path} answered ${r.status}: ${await r.text()}`);
    };
    for (const name of options.scopes) {
      await admin('/scope/', { name, display_name: name, description: name, password_required: false, scheme: {} });
    }
    await admin('/mod/plugin/', {
      module: 'oidc',
      name: PLUGIN,
      display_name: 'OIDC for tests',
      parameters: {
        iss: base.replace(/\/api$/, ''),
        'jwt-type': 'sha',
        'jwt-key-size': '256',
        key: 'a test signing key of no value',
        'access-token-duration': options.accessTokenTtlS ?? 1800,
        'refresh-token-duration': 1209600,
        'code-duration': 600,
        'refresh-token-rolling': false,
        'allow-non-oidc': true,
        'auth-type-code-enabled': false,
        'auth-type-token-enabled': false,
        'auth-type-id-token-enabled': false,
        'auth-type-device-enabled': false,
        'auth-type-client-enabled': true,
        'auth-type-refresh-enabled': false,
        ...(options.resources
          ? { 'resource-allowed': true, 'resource-scope': options.resources, 'resource-scope-and-client-property': false }
          : {}),
      },
    });
    for (const c of options.clients) {
      await admin('/client/', {
        client_id: c.clientId,
        name: c.clientId,
        // A client secret (kept as it is) rather than a password (hashed): glewlwyd compares it as sent.
        client_secret: c.secret,
        confidential: true,
        enabled: true,
        authorization_type: c.grants ?? ['client_credentials'],
        scope: c.scopes,
        token_endpoint_auth_method: c.authMethods ?? ['client_secret_basic', 'client_secret_post'],
        redirect_uri: [],
      });
    }
  } catch (err) {
    const log = output;
    await stop();
    throw new Error(`glewlwyd set-up failed: ${(err as Error).message}\n${log}`);
  }
  return { tokenUrl: `${base}/${PLUGIN}/token`, log: () => output, stop };
}
