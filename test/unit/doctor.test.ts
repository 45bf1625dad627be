/**
 * `doctor` end to end, in-process: a temp config, state directory and socket path, the machine id injected,
 * an eReceipt emulator on loopback as the identity service. A healthy box first, then each check made to fail
 * once, asserting what the technician reads: the status, what is wrong and what to do.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Credentials } from '../../src/authorities/index.js';
import { doctorCommand } from '../../src/cli/commands/doctor.js';
import type { Io } from '../../src/cli/common.js';
import { loadConfig } from '../../src/authorities/index.js';
import type { AccountStatusBody, ConfigStatusBody } from '../../src/api/index.js';
import { configFileSha256 } from '../../src/config/index.js';
import type { BoxFacts } from '../../src/doctor/box.js';
import { runDoctor, type AgentView, type DoctorCheck, type DoctorOptions, type DoctorReport } from '../../src/doctor/index.js';
import { createEmulator, DEMO_DEVICE, DEMO_PRINCIPALS, type Emulator } from '../../src/emulator/index.js';
import { stateAccess, type StateDeps } from '../../src/state.js';
import { DB_FILE, KEY_FILE, OUTBOX_FILE, openOutbox, openStore } from '../../src/store/index.js';
import { startConnectProxy } from '../support/proxy.js';
import { closeServer, createTestPki, startHttpsServer, startRenegotiationStripper, track, type TestPki } from '../support/tls.js';

const MACHINE_A = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const MACHINE_B = '9a8b7c6d5e4f30211203f4e5d6c7b8a9';
const HOUR = 3_600_000;
const ACCOUNT = 'shop1';
const GOOD: Credentials = { ...DEMO_PRINCIPALS['eta-ereceipt'].credentials };
const IDENTITY = {
  posserial: DEMO_DEVICE.posserial,
  pososversion: DEMO_DEVICE.pososversion!,
  posmodelframework: DEMO_DEVICE.posmodelframework!,
};

/**
 * The box the hints are written for, the same wherever the tests run: doctor runs as root, the tools a Debian box
 * with systemd has (and the set-up command) are there, and /etc/resolv.conf and timesyncd.conf exist; other files
 * are this machine's.
 */
const HINT_FILES = new Set(['/etc/resolv.conf', '/etc/systemd/timesyncd.conf']);
const BOX: Partial<BoxFacts> = {
  uid: 0,
  command: (name) => ['getent', 'timedatectl', 'systemd-machine-id-setup', 'usermod', 'sudo', 'pos-token-agent-provision'].includes(name),
  exists: (path) => HINT_FILES.has(path) || existsSync(path),
};

/** What a current agent reports of the config at `path` as it is now (generation 1). */
function runs(path: string): ConfigStatusBody {
  return { path, sha256: configFileSha256(readFileSync(path, 'utf8')), generation: 1, loaded_at: '2026-01-01T00:00:00.000Z', reload_error: null };
}

const deps = (machineId = MACHINE_A): Required<StateDeps> => ({
  env: {},
  machineId: async () => machineId,
  hostname: () => 'till-7',
});

interface BoxOptions {
  /** Replaces or adds keys of the account (undefined removes one). */
  account?: Record<string, unknown>;
  /** Added to the top level of the config. */
  config?: Record<string, unknown>;
  /** What `provision` stored; null: nothing provisioned (the key and database do not exist). */
  credentials?: Credentials | null;
  /** The machine the credentials were provisioned on. */
  provisionedOn?: string;
}

interface Box {
  dir: string;
  configPath: string;
  stateDir: string;
  keyFile: string;
  socket: string;
  run(extra?: Partial<DoctorOptions>): Promise<DoctorReport>;
}

function check(report: DoctorReport, name: string): DoctorCheck {
  const c = report.checks.find((x) => x.name === name);
  assert.ok(c, `no check ${name} in ${JSON.stringify(report.checks.map((x) => x.name))}`);
  return c;
}

function statuses(report: DoctorReport): Array<[string, string]> {
  return report.checks.map((c) => [c.name, c.status]);
}

/** Asserts the check failed (or warned), naming what is wrong and what to do; returns it. */
function broken(report: DoctorReport, name: string, status: 'fail' | 'warn', detail: RegExp, fix: RegExp): DoctorCheck {
  const c = check(report, name);
  assert.equal(c.status, status, JSON.stringify(c));
  assert.match(c.detail, detail);
  assert.ok(c.fix, `${name} has no fix: ${JSON.stringify(c)}`);
  assert.match(c.fix, fix);
  if (status === 'fail') assert.equal(report.ok, false);
  return c;
}

/** A fake of the running agent's socket client: what /v1/status says of ACCOUNT (and `config`), and /v1/health. */
function fakeAgent(account: Partial<AccountStatusBody>, health = 200, config?: ConfigStatusBody) {
  const asked: string[] = [];
  const body: AccountStatusBody = {
    authority: 'eta-ereceipt',
    state: 'fresh',
    expires_at: null,
    last_login_at: null,
    last_success_at: null,
    last_error: null,
    identity: { ...IDENTITY, profile: null, sources: {}, degraded: false, problems: {}, read_at: null },
    next_attempt_in_s: null,
    ...account,
  };
  const agent = (_socket: string): AgentView => ({
    async status() {
      asked.push('/v1/status');
      return { version: '0.5.0', uptime_s: 60, accounts: { [ACCOUNT]: body }, ...(config ? { config } : {}) };
    },
    async health() {
      asked.push('/v1/health');
      return health === 200 ? { status: 'ok' } : { status: 'unhealthy', failing: [ACCOUNT] };
    },
  });
  return { agent, asked };
}

describe('doctor', () => {
  let emulator: Emulator;
  const cleanup: Array<() => unknown> = [];

  before(async () => {
    emulator = createEmulator({ devices: [DEMO_DEVICE], rateLimitPerMinute: 0 });
    await emulator.start();
  });

  after(async () => {
    await emulator.stop();
  });

  afterEach(async () => {
    for (const undo of cleanup.splice(0).reverse()) await undo();
  });

  async function makeBox(options: BoxOptions = {}): Promise<Box> {
    const dir = mkdtempSync(join(tmpdir(), 'pta-doctor-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    mkdirSync(join(dir, 'profiles'));
    mkdirSync(join(dir, 'root'));
    const account: Record<string, unknown> = { authority: 'eta-ereceipt', identityUrl: emulator.url, identity: IDENTITY };
    for (const [k, v] of Object.entries(options.account ?? {})) {
      if (v === undefined) delete account[k];
      else account[k] = v;
    }
    const configPath = join(dir, 'config.json');
    const socket = join(dir, 'agent.sock');
    writeFileSync(
      configPath,
      JSON.stringify({
        socket,
        stateDir,
        deviceProfileDirs: [join(dir, 'profiles')],
        identityRoot: join(dir, 'root'),
        proxy: { url: null },
        ...options.config,
        accounts: { [ACCOUNT]: account },
      }),
    );
    const credentials = options.credentials === undefined ? GOOD : options.credentials;
    if (credentials) {
      // As `provision` does it: the store options stateAccess gives, here with the injected machine id.
      const access = await stateAccess(loadConfig(configPath, {}), deps(options.provisionedOn));
      const store = openStore(access.options);
      try {
        store.putCredentials(ACCOUNT, 'eta-ereceipt', credentials);
      } finally {
        store.close();
      }
    }
    return {
      dir,
      configPath,
      stateDir,
      keyFile: join(stateDir, KEY_FILE),
      socket,
      run: (extra = {}) => runDoctor({ configPath, ...deps(), box: BOX, ...extra }),
    };
  }

  /** A real Unix socket at `path` with `mode`; closed after the test. */
  async function listenOn(path: string, mode: number): Promise<void> {
    const server: Server = createNetServer((c) => c.destroy());
    await new Promise<void>((resolve) => server.listen(path, resolve));
    chmodSync(path, mode);
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  }

  test('a healthy box passes every check that can pass here; with no agent running the socket is only a warning', async () => {
    const box = await makeBox();
    const issued = emulator.stats().issued;
    const report = await box.run({ managedBySystemd: true });
    assert.deepEqual(statuses(report), [
      ['config', 'ok'],
      ['state.directory', 'ok'],
      ['state.key', 'ok'],
      ['state.database', 'ok'],
      [`${ACCOUNT}.identity`, 'ok'],
      [`${ACCOUNT}.credentials`, 'ok'],
      [`${ACCOUNT}.dns`, 'ok'],
      [`${ACCOUNT}.tcp`, 'ok'],
      [`${ACCOUNT}.tls`, 'skipped'],
      [`${ACCOUNT}.clock`, 'ok'],
      [`${ACCOUNT}.login`, 'ok'],
      ['socket', 'warn'],
    ]);
    assert.equal(report.ok, true);
    assert.match(check(report, `${ACCOUNT}.identity`).detail, /posserial=DEMO-POS-0001 \(config identity\.posserial\)/);
    assert.match(check(report, `${ACCOUNT}.login`).detail, /^one login succeeded: a token valid for 3600 s$/);
    assert.equal(emulator.stats().issued, issued + 1, 'exactly one real login');
    broken(report, 'socket', 'warn', /the agent is not running/, /systemctl enable --now pos-token-agent\.socket/);
    assert.ok(report.checks.every((c) => c.status === 'ok' || c.status === 'skipped' || c.fix), 'every warning has a fix');
  });

  test('with a running agent (a real socket, mode 0660, and a fake client answering /v1/status and /v1/health) every check is ok and no login is made', async () => {
    const box = await makeBox();
    await listenOn(box.socket, 0o660);
    const agent = fakeAgent({ state: 'fresh' }, 200, runs(box.configPath));
    const issued = emulator.stats().issued;
    const report = await box.run({ agent: agent.agent });
    assert.equal(report.ok, true);
    assert.deepEqual(
      report.checks.filter((c) => c.status !== 'ok').map((c) => c.name),
      [`${ACCOUNT}.tls`],
      'only TLS is skipped (the emulator speaks http)',
    );
    assert.equal(check(report, `${ACCOUNT}.login`).detail, `the running agent holds a fresh token for ${ACCOUNT}`);
    assert.match(check(report, 'socket').detail, /\(mode 0660\) answers: every account has a usable token$/);
    assert.deepEqual(agent.asked, ['/v1/status', '/v1/health']);
    assert.equal(emulator.stats().issued, issued, 'the agent\'s view is used instead of a login');
  });

  test('config: an unknown key fails naming the key, says to edit the file, and the report stops there', async () => {
    const box = await makeBox({ config: { stateDirectory: '/var/lib/x' }, credentials: null });
    const report = await box.run();
    assert.equal(report.ok, false);
    assert.equal(report.checks.length, 1);
    broken(report, 'config', 'fail', /unknown key "stateDirectory"/, new RegExp(`^edit ${box.configPath.replace(/[.]/g, '\\.')} `));
  });

  test('config: a fresh install with no accounts yet fails, saying to run the provisioning script', async () => {
    const box = await makeBox({ credentials: null });
    const raw = JSON.parse(readFileSync(box.configPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(box.configPath, JSON.stringify({ ...raw, accounts: {} }));
    // Installed: systemd runs the agent of this config, which is the set-up's.
    const report = await box.run({ managedBySystemd: true });
    assert.equal(report.ok, false);
    broken(report, 'config', 'fail', /has no accounts yet/, /pos-token-agent-provision/);
  });

  test('state.directory: mode 0755 fails (other users can look inside) with chmod 0700', async () => {
    const box = await makeBox();
    chmodSync(box.stateDir, 0o755);
    const report = await box.run();
    broken(report, 'state.directory', 'fail', /has mode 0755: other users can look inside/, new RegExp(`^chmod 0700 ${box.stateDir}$`));
    assert.equal(check(report, `${ACCOUNT}.login`).status, 'ok', 'the rest still runs');
  });

  test('state.directory: a state directory that does not exist fails, saying to provision; doctor does not create it', async () => {
    const box = await makeBox({ credentials: null });
    rmSync(box.stateDir, { recursive: true });
    const report = await box.run();
    broken(report, 'state.directory', 'fail', /does not exist/, /^run: pos-token-agent provision --account shop1 /);
    assert.equal(check(report, 'state.database').status, 'skipped');
    assert.equal(check(report, `${ACCOUNT}.credentials`).status, 'skipped');
    assert.equal(existsSync(box.stateDir), false, 'doctor only looks');
  });

  test('state.key: a key file with mode 0644 fails with chmod 0600', async () => {
    const box = await makeBox();
    chmodSync(box.keyFile, 0o644);
    const report = await box.run();
    broken(report, 'state.key', 'fail', /secret\.key has mode 0644 .* it must be 0600/, new RegExp(`^chmod 0600 ${box.keyFile} `));
  });

  test(
    'state.key: a key file owned by another user than the state directory fails with chown',
    { skip: process.getuid?.() !== 0 ? 'needs root to chown' : false },
    async () => {
      const box = await makeBox();
      chownSync(box.keyFile, 65534, 65534);
      const report = await box.run();
      broken(report, 'state.key', 'fail', /owner uid 65534; .* owned by the state directory's owner/, new RegExp(`chown ${process.getuid?.()} ${box.keyFile}$`));
    },
  );

  test('state.permissions: a database file with mode 0644 fails with chmod 0600', async () => {
    const box = await makeBox();
    chmodSync(join(box.stateDir, DB_FILE), 0o644);
    const report = await box.run();
    broken(report, 'state.permissions', 'fail', /state\.db has mode 0644/, /^chmod 0600 .*state\.db\*$/);
  });

  test('state.machine-id: an unusable machine id is a warning (secrets not bound to the box), saying to set it up and re-provision', async () => {
    const box = await makeBox({ provisionedOn: 'uninitialized' });
    const report = await box.run({ machineId: async () => 'uninitialized' });
    broken(report, 'state.machine-id', 'warn', /not bound to this machine: the machine id is "uninitialized"/, /systemd-machine-id-setup.*re-provision/);
    assert.equal(report.ok, true, 'a warning does not fail');
    assert.equal(check(report, `${ACCOUNT}.login`).status, 'ok');
  });

  test('state.database: a database provisioned on another machine fails as foreign_machine, saying to re-provision', async () => {
    const box = await makeBox({ provisionedOn: MACHINE_A });
    const report = await box.run({ machineId: async () => MACHINE_B });
    broken(report, 'state.database', 'fail', /made on another machine/, /re-provision every account \(pos-token-agent provision --account shop1\)/);
    assert.equal(check(report, `${ACCOUNT}.credentials`).status, 'skipped');
    assert.equal(check(report, `${ACCOUNT}.login`).status, 'skipped');
    // The same box on the machine it was provisioned on is fine: the binding is what failed.
    assert.equal((await box.run({ machineId: async () => MACHINE_A })).ok, true);
  });

  test('state.key: a lost key fails (the database was sealed with it), saying to restore it or re-provision', async () => {
    const box = await makeBox();
    unlinkSync(box.keyFile);
    const report = await box.run();
    broken(report, 'state.key', 'fail', /secret\.key is missing, but .*state\.db was sealed with it/, /^restore .*secret\.key from a backup .* or re-provision every account \(pos-token-agent provision --account shop1\)$/);
    broken(report, 'state.database', 'fail', /secret key .* is missing/, /re-provision every account \(pos-token-agent provision --account shop1\)/);
    assert.equal(check(report, `${ACCOUNT}.credentials`).status, 'skipped');
  });

  test('identity: a device profile that does not exist fails, naming the directories and saying to choose another', async () => {
    const box = await makeBox({ account: { deviceProfile: 'no-such-till', identity: undefined } });
    const report = await box.run();
    broken(
      report,
      `${ACCOUNT}.identity`,
      'fail',
      /^no device profile named "no-such-till" in .*profiles/,
      /^set accounts\.shop1\.deviceProfile in the config to a profile that exists \(pos-token-agent identity --detect/,
    );
    assert.equal(check(report, `${ACCOUNT}.login`).status, 'skipped');
  });

  test('identity: a profile whose source fails (a file that is missing) names the source, saying how to see and fix it', async () => {
    const box = await makeBox({ account: { deviceProfile: 'till', identity: undefined } });
    writeFileSync(
      join(box.dir, 'profiles', 'till.json'),
      JSON.stringify({
        name: 'till',
        description: 'a till whose serial is in a file',
        values: {
          posserial: { source: 'file', path: '/etc/till/serial' },
          pososversion: { source: 'static', value: 'os' },
          posmodelframework: { source: 'static', value: '1' },
        },
      }),
    );
    const report = await box.run();
    broken(
      report,
      `${ACCOUNT}.identity`,
      'fail',
      /\(device profile till\): no posserial \(.*\/etc\/till\/serial/,
      /pos-token-agent identity --account shop1.*accounts\.shop1\.identity/,
    );
    assert.equal(check(report, `${ACCOUNT}.login`).status, 'skipped');
  });

  test('identity: an invalid profile file fails, listing its problems on one line and saying to fix it or choose another', async () => {
    const box = await makeBox({ account: { deviceProfile: 'till', identity: undefined } });
    writeFileSync(join(box.dir, 'profiles', 'till.json'), JSON.stringify({ name: 'till', description: 'x', valeus: {} }));
    const report = await box.run();
    const c = broken(report, `${ACCOUNT}.identity`, 'fail', /^invalid device profile .*till\.json: .*unknown key "valeus"/, /^fix .*till\.json as listed, or set accounts\.shop1\.deviceProfile/);
    assert.doesNotMatch(c.detail, /\n/);
  });

  test('credentials: a box never provisioned fails the credentials check, saying to run provision; doctor creates no database or key', async () => {
    const box = await makeBox({ credentials: null });
    const report = await box.run();
    broken(report, 'state.key', 'warn', /no key file at .* yet/, /^run: pos-token-agent provision --account shop1$/);
    broken(report, 'state.database', 'warn', /no state database at .* yet/, /^run: pos-token-agent provision --account shop1$/);
    broken(report, `${ACCOUNT}.credentials`, 'fail', /has no credentials: nothing has been provisioned/, /^run: pos-token-agent provision --account shop1$/);
    assert.equal(check(report, `${ACCOUNT}.login`).status, 'skipped');
    assert.deepEqual(readdirSync(box.stateDir), [], 'doctor only looks');
  });

  test('credentials: an account missing from a provisioned database fails, saying to run provision for it', async () => {
    const box = await makeBox({ credentials: null });
    const store = openStore((await stateAccess(loadConfig(box.configPath, {}), deps())).options);
    store.putCredentials('other-till', 'eta-ereceipt', GOOD);
    store.close();
    const report = await box.run();
    assert.equal(check(report, 'state.database').status, 'ok');
    broken(report, `${ACCOUNT}.credentials`, 'fail', /^account shop1 has no credentials$/, /^run: pos-token-agent provision --account shop1$/);
  });

  test('credentials: credentials provisioned for another authority fail, saying to run provision', async () => {
    const box = await makeBox({ credentials: null });
    const store = openStore((await stateAccess(loadConfig(box.configPath, {}), deps())).options);
    store.putCredentials(ACCOUNT, 'sepay', GOOD);
    store.close();
    const report = await box.run();
    broken(report, `${ACCOUNT}.credentials`, 'fail', /provisioned for sepay, the config says eta-ereceipt/, /^run: pos-token-agent provision --account shop1$/);
  });

  test('login: credentials the authority rejects fail, saying to check them and run provision', async () => {
    const box = await makeBox({ credentials: { ...GOOD, clientSecret: '00000000-0000-4000-8000-000000000000' } });
    const report = await box.run();
    assert.equal(check(report, `${ACCOUNT}.credentials`).status, 'ok');
    broken(report, `${ACCOUNT}.login`, 'fail', /^login failed \(credentials_rejected\)/, /portal.*run: pos-token-agent provision --account shop1$/);
  });

  test('dns: a host that does not resolve fails, pointing at the host name and resolv.conf; the rest of the network is skipped', async () => {
    const box = await makeBox({ account: { identityUrl: 'https://id.eta.invalid' } });
    const report = await box.run();
    broken(report, `${ACCOUNT}.dns`, 'fail', /id\.eta\.invalid/, /host name in the config.*\/etc\/resolv\.conf/);
    for (const name of ['tcp', 'tls', 'clock', 'login']) assert.equal(check(report, `${ACCOUNT}.${name}`).status, 'skipped', name);
  });

  test('tcp: a port where nothing listens fails as refused, saying to check the URL and open outbound TCP', async () => {
    const probe = createNetServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const box = await makeBox({ account: { identityUrl: `http://127.0.0.1:${port}` } });
    const report = await box.run();
    broken(report, `${ACCOUNT}.tcp`, 'fail', /refused the connection \(ECONNREFUSED\)/, new RegExp(`check the URL and port in the config, and open outbound TCP ${port}`));
    assert.equal(check(report, `${ACCOUNT}.login`).status, 'skipped');
  });

  test('proxy: a proxy that refuses CONNECT fails, saying to ask the network admin; direct DNS/TCP are skipped', async () => {
    const proxy = await startConnectProxy({ refuseStatus: 403 });
    cleanup.push(() => proxy.close());
    const box = await makeBox({ account: { identityUrl: 'https://id.eta.test' }, config: { proxy: { url: proxy.url } } });
    const report = await box.run();
    broken(report, `${ACCOUNT}.proxy`, 'fail', /refused CONNECT to id\.eta\.test:443 \(HTTP 403\)/, /ask the network admin to allow HTTPS \(CONNECT\)/);
    assert.deepEqual(
      report.checks.filter((c) => c.name.startsWith(`${ACCOUNT}.`)).map((c) => [c.name, c.status]),
      [
        [`${ACCOUNT}.identity`, 'ok'],
        [`${ACCOUNT}.credentials`, 'ok'],
        [`${ACCOUNT}.dns`, 'skipped'],
        [`${ACCOUNT}.tcp`, 'skipped'],
        [`${ACCOUNT}.dns`, 'ok'],
        [`${ACCOUNT}.proxy`, 'fail'],
        [`${ACCOUNT}.tls`, 'skipped'],
        [`${ACCOUNT}.clock`, 'skipped'],
        [`${ACCOUNT}.login`, 'skipped'],
      ],
    );
  });

  test('login: an authority answering 503 is a warning (the agent retries by itself), not a failure', async () => {
    const box = await makeBox();
    emulator.setFaults({ fail5xx: 1 });
    cleanup.push(() => emulator.clearFaults());
    const report = await box.run();
    broken(report, `${ACCOUNT}.login`, 'warn', /^login failed \(upstream_unavailable\)/, /try again later/);
    assert.equal(report.ok, true);
  });

  test('clock: an identity service whose Date header is an hour off fails the clock check, saying to fix time sync', async () => {
    const skewed: HttpServer = createHttpServer((req, res) => {
      req.resume();
      // 20 s over the hour: the reading is only good to about a second, so exactly an hour may read 59 min 59 s.
      res.setHeader('date', new Date(Date.now() + HOUR + 20_000).toUTCString());
      res.writeHead(404);
      res.end();
    });
    const sockets = track(skewed);
    await new Promise<void>((resolve) => skewed.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => closeServer(skewed, sockets));
    const box = await makeBox({ account: { identityUrl: `http://127.0.0.1:${(skewed.address() as AddressInfo).port}` } });
    const report = await box.run();
    broken(report, `${ACCOUNT}.clock`, 'fail', /this box's clock is 1 h 0 min behind the time at 127\.0\.0\.1:\d+/, /timedatectl set-ntp true/);
  });

  describe('TLS', () => {
    let pki: TestPki;
    before(() => {
      pki = createTestPki();
    });
    after(() => pki.cleanup());

    test('tls: a certificate from a CA this box does not trust fails, saying to set tls.caFile for the account', async () => {
      const server = await startHttpsServer(pki.server);
      cleanup.push(() => server.close());
      const box = await makeBox({ account: { identityUrl: `https://localhost:${server.port}` } });
      const report = await box.run();
      assert.equal(check(report, `${ACCOUNT}.tcp`).status, 'ok');
      broken(report, `${ACCOUNT}.tls`, 'fail', /not from a trusted CA .*"pos-token-agent test CA"/, /set tls\.caFile for account shop1/);
      assert.equal(check(report, `${ACCOUNT}.login`).status, 'skipped');
    });

    test('tls: a server without secure renegotiation (RFC 5746) fails, saying to set tls.legacyServerConnect', async () => {
      const server = await startHttpsServer(pki.server, { maxVersion: 'TLSv1.2' });
      cleanup.push(() => server.close());
      const relay = await startRenegotiationStripper(server.port);
      cleanup.push(() => relay.close());
      const box = await makeBox({ account: { identityUrl: `https://localhost:${relay.port}`, tls: { caFile: pki.caFile } } });
      const report = await box.run();
      broken(
        report,
        `${ACCOUNT}.tls`,
        'fail',
        /does not support secure renegotiation \(RFC 5746\)/,
        /^set tls\.legacyServerConnect: true for account shop1 in the config/,
      );
    });
  });

  test('socket: a plain file where the socket should be fails, saying to remove it', async () => {
    const box = await makeBox();
    writeFileSync(box.socket, 'not a socket');
    const report = await box.run();
    broken(report, 'socket', 'fail', /is not a socket/, new RegExp(`^remove ${box.socket} `));
  });

  test('socket: a socket with mode 0666 fails (any user can take tokens), saying to set SocketMode=0660', async () => {
    const box = await makeBox();
    await listenOn(box.socket, 0o666);
    // Under systemd, whose socket unit makes the socket; by hand, the agent makes it with 0660 when it starts.
    const byHand = await box.run({ managedBySystemd: false });
    broken(byHand, 'socket', 'fail', /mode 0666: any user on the box can take tokens/, /^the agent makes its socket with mode 0660: stop the agent and start it again/);
    assert.doesNotMatch(check(byHand, 'socket').fix!, /SocketMode|pos-token-agent\.socket/, 'no socket unit runs it');
    const report = await box.run({ managedBySystemd: true });
    broken(report, 'socket', 'fail', /mode 0666: any user on the box can take tokens/, /SocketMode=0660/);
  });

  test('socket: a socket the agent does not answer on fails, saying to restart the agent and read its journal', async () => {
    const box = await makeBox();
    await listenOn(box.socket, 0o660);
    const silent = async (): Promise<never> => {
      throw new Error('no answer from the agent within 5 s');
    };
    const report = await box.run({ agent: () => ({ status: silent, health: silent }), managedBySystemd: true });
    broken(report, 'socket', 'fail', /exists but does not answer: no answer from the agent/, /systemctl restart pos-token-agent; then journalctl/);
    assert.equal(check(report, `${ACCOUNT}.login`).status, 'ok', 'the login is checked by doctor itself instead');
  });

  test('login: a running agent that reports credentials_rejected fails the login check, saying to run provision', async () => {
    const box = await makeBox();
    await listenOn(box.socket, 0o660);
    const agent = fakeAgent(
      { state: 'none', last_error: { reason: 'credentials_rejected', message: 'invalid_client', at: new Date().toISOString() } },
      503,
    );
    const issued = emulator.stats().issued;
    const report = await box.run({ agent: agent.agent });
    broken(report, `${ACCOUNT}.login`, 'fail', /the running agent reports credentials_rejected: invalid_client/, /run: pos-token-agent provision --account shop1$/);
    broken(report, 'socket', 'warn', /not every account has a usable token/, /pos-token-agent status/);
    assert.equal(emulator.stats().issued, issued, 'no login of its own');
  });

  test('socket: where the agent is started by hand, the fixes say how to run it with the config used, not systemctl', async () => {
    const box = await makeBox();
    const none = await box.run({ managedBySystemd: false, noLogin: true });
    const fix = broken(none, 'socket', 'warn', /the agent is not running/, /^pos-token-agent run --config /).fix!;
    assert.equal(fix, `pos-token-agent run --config ${box.configPath}`);
    await listenOn(box.socket, 0o660);
    const silent = async (): Promise<never> => {
      throw new Error('no answer from the agent within 5 s');
    };
    const hung = await box.run({ agent: () => ({ status: silent, health: silent }), managedBySystemd: false, noLogin: true });
    const restart = broken(hung, 'socket', 'fail', /exists but does not answer/, /start it again with: pos-token-agent run --config /).fix!;
    assert.ok(restart.includes(`pos-token-agent run --config ${box.configPath}`), restart);
    assert.ok(!restart.includes('systemctl') && !fix.includes('systemctl'));
  });

  test('login: the running agent\'s view says when the last successful login was, apart from the failure', async () => {
    const box = await makeBox();
    await listenOn(box.socket, 0o660);
    const at = new Date().toISOString();
    const rejected = fakeAgent(
      { state: 'none', last_login_at: at, last_success_at: '2026-01-01T00:00:00.000Z', last_error: { reason: 'credentials_rejected', message: 'invalid_client', at } },
      503,
    );
    const report = await box.run({ agent: rejected.agent });
    broken(
      report,
      `${ACCOUNT}.login`,
      'fail',
      /the running agent reports credentials_rejected: invalid_client \(last successful login 2026-01-01T00:00:00\.000Z\)/,
      /run: pos-token-agent provision --account shop1$/,
    );
    const down = fakeAgent({ state: 'expired', last_login_at: at, last_error: { reason: 'upstream_unavailable', message: 'HTTP 503', at } }, 503);
    const warned = await box.run({ agent: down.agent });
    broken(warned, `${ACCOUNT}.login`, 'warn', /no usable token \(expired\): upstream_unavailable: HTTP 503 \(no successful login yet\)/, /pos-token-agent status/);
  });

  describe('which config the running agent runs (agent.config)', () => {
    /** A box with a running agent that reports `config` (a function of the box's config path). */
    async function withAgent(config: (path: string) => ConfigStatusBody | undefined, extra: Partial<DoctorOptions> = {}) {
      const box = await makeBox();
      await listenOn(box.socket, 0o660);
      const agent = fakeAgent({ state: 'fresh' }, 200, config(box.configPath));
      return { box, report: await box.run({ agent: agent.agent, ...extra }), asked: agent.asked };
    }

    /** The box's config file edited (a comment-free change the agent has not read), written `ageMs` ago. */
    function edit(path: string, ageMs = 0): void {
      const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      writeFileSync(path, JSON.stringify({ ...raw, logLevel: 'debug' }));
      const at = new Date(Date.now() - ageMs);
      utimesSync(path, at, at);
    }

    test('the same text: ok, with its generation; after the socket check, from the one /v1/status doctor asked', async () => {
      const { report, asked } = await withAgent((path) => ({ ...runs(path), generation: 3 }));
      const c = check(report, 'agent.config');
      assert.equal(c.status, 'ok');
      assert.equal(c.detail, 'the agent runs this config (generation 3, loaded 2026-01-01T00:00:00.000Z)');
      assert.deepEqual(report.checks.slice(-2).map((x) => x.name), ['socket', 'agent.config']);
      assert.deepEqual(asked, ['/v1/status', '/v1/health']);
    });

    test('a file edited without a reload: a warning (the agent serves with what it has), saying to reload, and what needs a restart', async () => {
      const box = await makeBox();
      await listenOn(box.socket, 0o660);
      const before = runs(box.configPath);
      edit(box.configPath);
      const agent = fakeAgent({ state: 'fresh' }, 200, before);
      const managed = await box.run({ agent: agent.agent, managedBySystemd: true });
      const c = broken(managed, 'agent.config', 'warn', /has changed since the agent loaded it: the running agent runs an earlier version of .*config\.json \(generation 1, loaded 2026-01-01T00:00:00\.000Z\)$/, /^reload the agent to apply it: systemctl reload pos-token-agent \(a change of socket, stateDir, .* takes effect only with a restart: systemctl restart pos-token-agent\)$/);
      assert.ok(c);
      assert.equal(managed.ok, true, 'a warning: doctor (and the set-up, which reloads after it) goes on');
      const byHand = await box.run({ agent: agent.agent, managedBySystemd: false });
      broken(byHand, 'agent.config', 'warn', /has changed since/, /^reload the agent to apply it: send the agent SIGHUP \(kill -HUP with its process id\)/);
    });

    test('a refused reload, and the file fixed after it: reload; the refusal\'s problems shown', async () => {
      const box = await makeBox();
      await listenOn(box.socket, 0o660);
      const before = runs(box.configPath);
      edit(box.configPath);
      const refused = { ...before, reload_error: { at: new Date(Date.now() - 3_600_000).toISOString(), problems: ['accounts.shop1: unknown key "identityURL"'] } };
      const report = await box.run({ agent: fakeAgent({ state: 'fresh' }, 200, refused).agent, managedBySystemd: true });
      broken(report, 'agent.config', 'warn', /its last reload, at \S+, was refused \(accounts\.shop1: unknown key "identityURL"\), and .*config\.json has changed since$/, /^reload the agent to apply it: systemctl reload pos-token-agent/);
    });

    test('a refused reload of the file as it is: fix what it names, then reload; a permission denied: the set-up\'s owner and mode again', async () => {
      const box = await makeBox();
      await listenOn(box.socket, 0o660);
      const before = runs(box.configPath);
      edit(box.configPath, 3_600_000);
      const at = new Date(Date.now() - 60_000).toISOString();
      const missing = { ...before, reload_error: { at, problems: ['account shop1: device profile "till-9" not found in /etc/pos-token-agent/device-profiles'] } };
      const report = await box.run({ agent: fakeAgent({ state: 'fresh' }, 200, missing).agent, managedBySystemd: true });
      broken(report, 'agent.config', 'warn', /was refused: account shop1: device profile "till-9" not found/, /^fix what the refused reload names, then reload: systemctl reload pos-token-agent$/);
      const denied = { ...before, reload_error: { at, problems: ['cannot read the file: permission denied'] } };
      const group = (gid: number) => (gid === 990 ? 'pos-token-agent' : undefined);
      const stat = (p: string) => (p === box.dir ? { mode: 0o40750, uid: 0, gid: 990, isDirectory: () => true } : undefined);
      const perms = await box.run({ agent: fakeAgent({ state: 'fresh' }, 200, denied).agent, managedBySystemd: true, box: { ...BOX, groupName: group, stat } });
      const fix = broken(perms, 'agent.config', 'warn', /was refused: cannot read the file: permission denied/, /^make \S+config\.json readable by the agent's user again/).fix!;
      assert.match(fix, /\(chown root:pos-token-agent \S+config\.json and chmod 0640 \S+config\.json\), then reload: systemctl reload pos-token-agent$/);
    });

    test('the file as the agent runs it, but a setting it reads only at start changed: a warning saying to restart', async () => {
      const { report } = await withAgent((path) => ({ ...runs(path), generation: 2, pending_restart: ['outbox', 'server'] }), { managedBySystemd: true });
      broken(
        report,
        'agent.config',
        'warn',
        /^the agent runs this config \(generation 2, .*\) except outbox, server, which it reads only at start: it still runs the values it started with$/,
        /^restart the agent to apply outbox, server: systemctl restart pos-token-agent/,
      );
    });

    test('an agent that does not report its config (older than this version): a warning that doctor cannot tell, saying to restart it', async () => {
      const { report } = await withAgent(() => undefined, { managedBySystemd: true });
      broken(report, 'agent.config', 'warn', /^the running agent \(version 0\.5\.0\) does not report which config it runs: doctor cannot tell whether it runs /, /^restart it, so that it runs .* and this version, which reports it: systemctl restart pos-token-agent; then journalctl/);
    });

    test('an agent on this socket running another file: named, with the doctor command for it', async () => {
      const { report } = await withAgent((path) => ({ ...runs(path), path: '/srv/other.json', sha256: '0'.repeat(64) }));
      broken(report, 'agent.config', 'warn', /runs \/srv\/other\.json \(generation 1, .*\), not \S+config\.json, and they differ$/, /^check the config you meant: pos-token-agent doctor --config \/srv\/other\.json; or start the agent with /);
    });

    test('no agent running: no agent.config check (the socket check says so)', async () => {
      const box = await makeBox();
      const report = await box.run({ agent: fakeAgent({ state: 'fresh' }).agent, noLogin: true });
      assert.equal(check(report, 'socket').status, 'warn');
      assert.ok(!report.checks.some((c) => c.name === 'agent.config'));
    });
  });

  describe('doctor --json (the CLI command)', () => {
    function io(env: NodeJS.ProcessEnv): { io: Io; out: () => string } {
      const stdout = new PassThrough();
      const chunks: Buffer[] = [];
      stdout.on('data', (c: Buffer) => chunks.push(c));
      return {
        io: { stdout, stderr: new PassThrough(), stdin: new PassThrough(), env },
        out: () => Buffer.concat(chunks).toString('utf8'),
      };
    }

    test('prints parseable JSON and exits 0 when nothing failed (warnings allowed)', async () => {
      // Provisioned the way `provision` does on this box: the CLI reads the real machine id.
      const box = await makeBox({ credentials: null });
      const access = await stateAccess(loadConfig(box.configPath, {}), { env: {} });
      const store = openStore(access.options);
      store.putCredentials(ACCOUNT, 'eta-ereceipt', GOOD);
      store.close();
      const { io: cli, out } = io({ POS_TOKEN_AGENT_CONFIG: box.configPath });
      const code = await doctorCommand(['--json'], cli);
      const report = JSON.parse(out()) as DoctorReport;
      assert.equal(code, 0, out());
      assert.equal(report.ok, true);
      assert.equal(check(report, `${ACCOUNT}.login`).status, 'ok');
      assert.equal(check(report, 'socket').status, 'warn');
    });

    test('prints parseable JSON and exits 1 when a check failed', async () => {
      const box = await makeBox({ credentials: null });
      const { io: cli, out } = io({ POS_TOKEN_AGENT_CONFIG: box.configPath });
      const code = await doctorCommand(['--json', '--no-login'], cli);
      const report = JSON.parse(out()) as DoctorReport;
      assert.equal(code, 1);
      assert.equal(report.ok, false);
      assert.equal(check(report, `${ACCOUNT}.credentials`).status, 'fail');
      assert.equal(check(report, `${ACCOUNT}.login`).status, 'skipped');
    });
  });

  describe('the API and the outbox', () => {
    /** A loopback port nothing listens on: one the system gave, then closed. */
    async function deadPort(): Promise<number> {
      const server = createNetServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return port;
    }

    /** Entries in the box's outbox.db, as the agent stores them, created `ageMs` ago. */
    async function enqueue(box: Box, account: string, count: number, ageMs: number): Promise<void> {
      const outbox = openOutbox({ dir: box.stateDir, maxEntries: 100, maxBytes: 1_000_000, now: () => Date.now() - ageMs });
      try {
        for (let i = 0; i < count; i++) await outbox.enqueue({ account, method: 'POST', path: '/api/v1/receipts', headers: {}, body: `{"n":${i}}` });
      } finally {
        outbox.close();
      }
    }

    test('an account with apiUrl gets DNS, TCP and TLS checks of the API after its login check, no clock check; none without one', async () => {
      const box = await makeBox({ account: { apiUrl: `${emulator.url}/api` } });
      const report = await box.run({ noLogin: true });
      const names = report.checks.map((c) => c.name);
      assert.deepEqual(names.slice(names.indexOf(`${ACCOUNT}.login`)), [
        `${ACCOUNT}.login`,
        `${ACCOUNT}.api.dns`,
        `${ACCOUNT}.api.tcp`,
        `${ACCOUNT}.api.tls`,
        'socket',
      ]);
      assert.equal(check(report, `${ACCOUNT}.api.tcp`).status, 'ok');
      assert.match(check(report, `${ACCOUNT}.api.tcp`).detail, new RegExp(`^${new URL(emulator.url).host.replace(/[.]/g, '\\.')}: `));
      assert.equal(check(report, `${ACCOUNT}.api.tls`).status, 'skipped', 'http on loopback');
      assert.equal(report.ok, true);
      const without = await (await makeBox()).run({ noLogin: true });
      assert.ok(!without.checks.some((c) => c.name.includes('.api.')));
    });

    test('an API that does not answer fails its TCP check, saying what to open and what waits meanwhile; the login is still checked', async () => {
      const port = await deadPort();
      const box = await makeBox({ account: { apiUrl: `http://127.0.0.1:${port}` } });
      const report = await box.run();
      broken(report, `${ACCOUNT}.api.tcp`, 'fail', new RegExp(`^127\\.0\\.0\\.1:${port}: `), /open outbound TCP.*accounts\.shop1\.apiUrl is where the proxy and the outbox send/);
      assert.equal(check(report, `${ACCOUNT}.api.tls`).status, 'skipped');
      assert.equal(check(report, `${ACCOUNT}.login`).status, 'ok');
      assert.equal(check(report, `${ACCOUNT}.tcp`).status, 'ok', 'the token service is another matter');
    });

    test('no outbox.db: no outbox check, and doctor makes none', async () => {
      const box = await makeBox({ account: { apiUrl: emulator.url } });
      const report = await box.run({ noLogin: true });
      assert.ok(!report.checks.some((c) => c.name === 'state.outbox'));
      assert.ok(!existsSync(join(box.stateDir, OUTBOX_FILE)));
    });

    test('outbox.db: integrity, what waits and how old, what was delivered; ok while younger than outbox.alertAfterS', async () => {
      const box = await makeBox({ account: { apiUrl: emulator.url }, config: { outbox: { alertAfterS: 3600 } } });
      await enqueue(box, ACCOUNT, 2, 5 * 60_000);
      const report = await box.run({ noLogin: true });
      const c = check(report, 'state.outbox');
      assert.equal(c.status, 'ok', JSON.stringify(c));
      assert.match(c.detail, /outbox\.db: integrity_check ok; 2 waiting \(oldest 5 min\), 0 delivered, 0 rejected, 0 cancelled$/);
      assert.equal(c.fix, undefined);
      assert.deepEqual(report.checks.slice(-2).map((x) => x.name), ['state.outbox', 'socket']);
    });

    test('outbox.db: entries older than outbox.alertAfterS warn, naming the account and saying where to look', async () => {
      const box = await makeBox({ account: { apiUrl: emulator.url }, config: { outbox: { alertAfterS: 600 } } });
      await enqueue(box, ACCOUNT, 3, 2 * HOUR);
      const report = await box.run({ noLogin: true, configFlag: box.configPath });
      const c = broken(
        report,
        'state.outbox',
        'warn',
        /entries of shop1 have waited longer than outbox\.alertAfterS \(10 min\): 3 waiting \(oldest 2 h\)/,
        /pos-token-agent outbox --config \S+ list --state queued; check the api checks above \(shop1\.api\.\*\) and pos-token-agent status/,
      );
      assert.ok(c);
      assert.equal(report.ok, true, 'a warning, not a failure');
    });

    test('outbox.db that is not a database fails, saying to keep a copy (it may hold receipts)', async () => {
      const box = await makeBox({ account: { apiUrl: emulator.url } });
      writeFileSync(join(box.stateDir, OUTBOX_FILE), 'not a database, but not empty either: '.repeat(200), { mode: 0o600 });
      const report = await box.run({ noLogin: true });
      broken(report, 'state.outbox', 'fail', /cannot read the outbox database .*outbox\.db: /, /keep a copy of outbox\.db/);
    });
  });
});
