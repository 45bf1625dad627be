/**
 * doctor's fixes fit their cause and name only what this box has: a table of cause -> fix, on boxes described by
 * their facts (doctor's user, the commands and files there are, owners and modes). Permission denied names the
 * group that gives access or says to run doctor with sudo, never to set up again; no config on a new box says to
 * run the set-up; a command or file the box does not have is not in any fix.
 */
import assert from 'node:assert/strict';
import { accessSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { AgentClientError } from '../../src/api/index.js';
import { authorities, loadConfig, type AuthorityRegistry } from '../../src/authorities/index.js';
import { ConfigError, DEFAULT_CONFIG_PATH } from '../../src/config/index.js';
import { findDenial, idNames, type BoxFacts, type FileStat } from '../../src/doctor/box.js';
import { checkConfig, CONFIG_DOCS } from '../../src/doctor/config.js';
import { agentHints, clockHint, dnsHint, machineIdHint, permissionDenied, provisionHint, setupCommand } from '../../src/doctor/hints.js';
import { runDoctor, type DoctorReport } from '../../src/doctor/index.js';
import { checkClock, checkDns } from '../../src/doctor/network.js';
import { checkState } from '../../src/doctor/state-checks.js';

const TECH = 1000;
const AGENT = 990;
const CLIENTS = 991;
const USERS = new Map([[0, 'root'], [TECH, 'tech'], [AGENT, 'pos-token-agent']]);
const GROUPS = new Map([[0, 'root'], [AGENT, 'pos-token-agent'], [CLIENTS, 'pos-token-clients']]);

interface FakeFile {
  mode: number;
  uid: number;
  gid: number;
  dir?: boolean;
}

/** The installed layout (systemd/*.tmpfiles, scripts/deb/postinst, install.sh): owners, groups and modes. */
const INSTALLED: Record<string, FakeFile> = {
  '/': { mode: 0o755, uid: 0, gid: 0, dir: true },
  '/etc': { mode: 0o755, uid: 0, gid: 0, dir: true },
  '/etc/pos-token-agent': { mode: 0o750, uid: 0, gid: AGENT, dir: true },
  '/etc/pos-token-agent/config.json': { mode: 0o640, uid: 0, gid: AGENT },
  '/run': { mode: 0o755, uid: 0, gid: 0, dir: true },
  '/run/pos-token-agent': { mode: 0o750, uid: AGENT, gid: CLIENTS, dir: true },
  '/run/pos-token-agent/agent.sock': { mode: 0o660, uid: AGENT, gid: CLIENTS },
  '/var': { mode: 0o755, uid: 0, gid: 0, dir: true },
  '/var/lib': { mode: 0o755, uid: 0, gid: 0, dir: true },
  '/var/lib/pos-token-agent': { mode: 0o700, uid: AGENT, gid: AGENT, dir: true },
};

interface Facts {
  uid?: number;
  /** The groups doctor's user is in. */
  groups?: number[];
  commands?: string[];
  files?: Record<string, FakeFile>;
  /** Paths that exist for `exists` besides `files`. */
  present?: string[];
}

/** A box described by its facts; access is decided from the owners and modes, as the kernel would. */
function fakeBox(f: Facts = {}): BoxFacts {
  const uid = f.uid ?? TECH;
  const files = f.files ?? INSTALLED;
  const groups = new Set(f.groups ?? [TECH]);
  return {
    uid,
    exists: (path) => path in files || (f.present ?? []).includes(path),
    command: (name) => (f.commands ?? ['sudo', 'usermod', 'pos-token-agent-provision']).includes(name),
    access(path, mode) {
      const file = files[path];
      if (!file) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      if (uid === 0) return;
      const bits = file.uid === uid ? (file.mode >> 6) & 7 : groups.has(file.gid) ? (file.mode >> 3) & 7 : file.mode & 7;
      if ((bits & mode) !== mode) throw Object.assign(new Error(`EACCES: ${path}`), { code: 'EACCES' });
    },
    stat(path) {
      const file = files[path];
      return file ? ({ mode: file.mode, uid: file.uid, gid: file.gid, isDirectory: () => file.dir === true } satisfies FileStat) : undefined;
    },
    userName: (id) => USERS.get(id),
    groupName: (id) => GROUPS.get(id),
  };
}

/** A registry whose config reading fails as loadConfig says it when the file cannot be read. */
function failingRegistry(problem: string): AuthorityRegistry {
  return {
    ...authorities,
    loadConfig: (path: string) => {
      throw new ConfigError(path, [problem]);
    },
  };
}

function config(path: string, box: BoxFacts, options: { managed?: boolean; flag?: string; problem?: string } = {}) {
  return checkConfig({
    path,
    env: {},
    registry: options.problem ? failingRegistry(options.problem) : authorities,
    box,
    managed: options.managed ?? false,
    configFlag: options.flag,
  }).check;
}

describe('doctor: each cause gets its fix', () => {
  const CONFIG = DEFAULT_CONFIG_PATH;

  test('config unreadable (permission denied): the group that may read it, and doctor with sudo; never the set-up', () => {
    const c = config(CONFIG, fakeBox(), { problem: 'cannot read the file: permission denied' });
    assert.equal(c.status, 'fail');
    assert.equal(
      c.detail,
      'permission denied: doctor, running as user tech, cannot read /etc/pos-token-agent/config.json: ' +
        'the directory /etc/pos-token-agent is 0750 root:pos-token-agent (only root and the group pos-token-agent may)',
    );
    assert.equal(c.fix, 'run doctor as root: sudo pos-token-agent doctor');
    // The directory open to the technician, the file not: the file is named.
    const files = { ...INSTALLED, '/etc/pos-token-agent': { ...INSTALLED['/etc/pos-token-agent']!, mode: 0o755 } };
    const file = config(CONFIG, fakeBox({ files }), { problem: 'cannot read the file: permission denied' });
    assert.match(file.detail, /: \/etc\/pos-token-agent\/config\.json is 0640 root:pos-token-agent \(only root and the group pos-token-agent may\)$/);
  });

  test('config missing on a new box (the default place): the set-up command, as this box has it', () => {
    const missing = { ...INSTALLED };
    delete missing[CONFIG];
    const cases: Array<[Facts, string]> = [
      [{ files: missing }, 'nothing is set up on this box yet: run the set-up: sudo pos-token-agent-provision'],
      [{ files: missing, uid: 0 }, 'nothing is set up on this box yet: run the set-up: pos-token-agent-provision'],
      [{ files: missing, commands: ['sudo'] }, 'nothing is set up on this box yet: run the set-up: sudo pos-token-agent setup'],
      [{ files: missing, commands: [] }, 'nothing is set up on this box yet: run the set-up: pos-token-agent setup (as root)'],
    ];
    for (const [facts, fix] of cases) {
      const c = config(CONFIG, fakeBox(facts), { problem: 'cannot read the file: file not found' });
      assert.equal(c.fix, fix, JSON.stringify(facts));
      assert.match(c.detail, /file not found/);
    }
  });

  test('config missing at a path given by hand: check the path; the installed config named only when there is one', () => {
    const c = config('/home/tech/agent.json', fakeBox({ files: { ...INSTALLED, '/home': { mode: 0o755, uid: 0, gid: 0, dir: true } } }), {
      flag: '/home/tech/agent.json',
      problem: 'cannot read the file: file not found',
    });
    assert.equal(c.fix, "check --config: there is no file /home/tech/agent.json; this box's config is /etc/pos-token-agent/config.json");
    const bare = config('/home/tech/agent.json', fakeBox({ files: { '/': INSTALLED['/']! } }), { problem: 'cannot read the file: file not found' });
    assert.equal(bare.fix, 'check the path: there is no file /home/tech/agent.json');
    assert.doesNotMatch(bare.fix!, /set-up|provision/);
  });

  test('a directory given as config: its config.json when there is one, else no file named', () => {
    const files = { ...INSTALLED };
    assert.equal(config('/etc/pos-token-agent', fakeBox({ files }), { problem: 'x is a directory' }).fix, 'give the config file itself: pos-token-agent doctor --config /etc/pos-token-agent/config.json');
    delete files[CONFIG];
    assert.equal(config('/etc/pos-token-agent', fakeBox({ files }), { problem: 'x is a directory' }).fix, 'give the config file itself, not its directory');
  });

  test('a config that reads but is not valid: edit it as listed, and the config reference where this box has it', () => {
    const c = config(CONFIG, fakeBox({ uid: 0 }), { problem: 'accounts.default: unknown key "identityURL"' });
    assert.equal(c.fix, `edit ${CONFIG} as listed, then run doctor again`);
    const deb = config(CONFIG, fakeBox({ uid: 0, present: ['/usr/share/doc/pos-token-agent/operations.md.gz'] }), { problem: 'x' });
    assert.equal(deb.fix, `edit ${CONFIG} as listed (every key: "Configuration" in /usr/share/doc/pos-token-agent/operations.md.gz), then run doctor again`);
    const release = config(CONFIG, fakeBox({ uid: 0, present: [CONFIG_DOCS[0]!] }), { problem: 'x' });
    assert.equal(release.fix, `edit ${CONFIG} as listed (every key: "Configuration" in ${CONFIG_DOCS[0]}), then run doctor again`);
    assert.match(CONFIG_DOCS[0]!, /\/docs\/operations\.md$/);
    assert.ok(existsSync(CONFIG_DOCS[0]!), 'the release\'s docs/operations.md is where the code says');
  });

  test('the socket refused (its directory is pos-token-clients\'): join that group, or doctor with sudo', () => {
    const box = fakeBox();
    const socket = '/run/pos-token-agent/agent.sock';
    const r = permissionDenied('connect to', socket, findDenial(socket, 'connect', box), box, { joinGroup: 'pos-token-clients' });
    assert.match(r.detail, /the directory \/run\/pos-token-agent is 0750 pos-token-agent:pos-token-clients \(only root, pos-token-agent and the group pos-token-clients may\)$/);
    assert.equal(r.fix, 'add your user to the group pos-token-clients (sudo usermod -aG pos-token-clients $USER, then log in again), or run doctor as root: sudo pos-token-agent doctor');
    const noUsermod = fakeBox({ commands: ['sudo'] });
    assert.equal(
      permissionDenied('connect to', socket, findDenial(socket, 'connect', noUsermod), noUsermod, { joinGroup: 'pos-token-clients' }).fix,
      'add your user to the group pos-token-clients, then log in again, or run doctor as root: sudo pos-token-agent doctor',
    );
  });

  test('a socket directory of another group (an agent run by hand as root): no group to join, only sudo; a mode 0000 file: only root', () => {
    const files = { ...INSTALLED, '/run/pos-token-agent': { mode: 0o750, uid: 0, gid: 0, dir: true } };
    const box = fakeBox({ files });
    const socket = '/run/pos-token-agent/agent.sock';
    const r = permissionDenied('reach', socket, findDenial(socket, 'connect', box), box, { joinGroup: 'pos-token-clients' });
    assert.match(r.detail, /the directory \/run\/pos-token-agent is 0750 root:root \(only root and the group root may\)$/);
    assert.equal(r.fix, 'run doctor as root: sudo pos-token-agent doctor', 'never "join the group root"');
    const locked = fakeBox({ files: { ...INSTALLED, '/etc/pos-token-agent': { mode: 0o755, uid: 0, gid: 0, dir: true }, [DEFAULT_CONFIG_PATH]: { mode: 0, uid: TECH, gid: TECH } } });
    const c = config(DEFAULT_CONFIG_PATH, locked, { problem: 'cannot read the file: permission denied' });
    assert.match(c.detail, /config\.json is 0000 tech:gid 1000 \(only root may\)$/);
  });

  test('the state directory refused (owner only): doctor with sudo, no group to join', () => {
    const box = fakeBox({ groups: [TECH, CLIENTS] });
    const dir = '/var/lib/pos-token-agent';
    const r = permissionDenied('look inside', dir, findDenial(dir, 'enter', box), box, { joinGroup: 'pos-token-clients' });
    assert.match(r.detail, /\/var\/lib\/pos-token-agent is 0700 pos-token-agent:pos-token-agent \(only root and pos-token-agent may\)$/);
    assert.equal(r.fix, 'run doctor as root: sudo pos-token-agent doctor');
  });

  test('no sudo on the box: run as root, without naming sudo; refused as root: look at owner and mode', () => {
    const box = fakeBox({ commands: [] });
    const dir = '/var/lib/pos-token-agent';
    assert.equal(permissionDenied('look inside', dir, findDenial(dir, 'enter', box), box).fix, 'run doctor as root: pos-token-agent doctor');
    const root = fakeBox({ uid: 0 });
    assert.match(permissionDenied('open', dir, undefined, root).fix, /^check the owner and mode of \/var\/lib\/pos-token-agent \(ls -ld /);
  });

  test('storing credentials: the set-up where systemd runs the agent (provision as root would leave files it cannot read), provision by hand', () => {
    assert.equal(provisionHint('shop1', { box: fakeBox(), managed: true }), 'sudo pos-token-agent-provision --account shop1');
    assert.equal(provisionHint('shop1', { box: fakeBox({ uid: 0 }), managed: true }), 'pos-token-agent-provision --account shop1');
    assert.equal(provisionHint('shop1', { box: fakeBox(), managed: false }), 'pos-token-agent provision --account shop1');
    assert.equal(setupCommand(fakeBox({ commands: ['sudo'] }), '--account a'), 'sudo pos-token-agent setup --account a');
  });

  test('starting, restarting and reloading the agent: systemctl with sudo under systemd; by hand, with the config used', () => {
    const managed = agentHints(CONFIG, true, fakeBox());
    assert.equal(managed.enable, 'sudo systemctl enable --now pos-token-agent.socket pos-token-agent.service');
    assert.equal(managed.restart, 'sudo systemctl restart pos-token-agent; then sudo journalctl -u pos-token-agent');
    assert.equal(managed.reload, 'sudo systemctl reload pos-token-agent');
    assert.match(managed.restartNote, /^a change of socket, stateDir, deviceProfileDirs, identityRoot, proxy, server and outbox takes effect only with a restart: sudo systemctl restart pos-token-agent$/);
    const root = agentHints(CONFIG, true, fakeBox({ uid: 0 }));
    assert.equal(root.reload, 'systemctl reload pos-token-agent');
    const byHand = agentHints('/home/tech/a.json', false, fakeBox());
    assert.equal(byHand.enable, 'pos-token-agent run --config /home/tech/a.json');
    assert.equal(byHand.reload, 'send the agent SIGHUP (kill -HUP with its process id)');
    assert.doesNotMatch(JSON.stringify(byHand), /systemctl|sudo/);
  });

  test('DNS, clock and machine id: the tools and files named are the ones this box has', () => {
    const full = fakeBox({ commands: ['sudo', 'getent', 'timedatectl', 'systemd-machine-id-setup'], present: ['/etc/resolv.conf', '/etc/systemd/timesyncd.conf'] });
    const bare = fakeBox({ commands: [], files: {} });
    assert.equal(dnsHint(full).server, 'check the DNS server in /etc/resolv.conf');
    assert.equal(dnsHint(full).tryName('a.example', ' (try: ', ')'), ' (try: getent hosts a.example)');
    assert.equal(dnsHint(bare).server, "check this box's DNS server setting");
    assert.equal(dnsHint(bare).tryName('a.example', ' (try: ', ')'), '');
    assert.match(clockHint(full).sync, /timedatectl set-ntp true \(and check the NTP server in \/etc\/systemd\/timesyncd\.conf is reachable\)/);
    const clock = JSON.stringify(clockHint(bare));
    assert.doesNotMatch(clock, /timedatectl|timesyncd\.conf/);
    assert.match(clock, /NTP client/);
    assert.equal(machineIdHint(full), 'sudo systemd-machine-id-setup');
    assert.doesNotMatch(machineIdHint(bare), /systemd-machine-id-setup|dbus-uuidgen/);
  });

  test('network checks on a box without getent, timedatectl or resolv.conf name none of them', async () => {
    const bare = fakeBox({ commands: [], files: {} });
    const dns = await checkDns('id.eta.invalid', { box: bare, lookup: async () => Promise.reject(Object.assign(new Error('x'), { code: 'ENOTFOUND' })) });
    assert.ok(!dns.ok);
    assert.equal(dns.fix, "check the host name in the config; check this box's DNS server setting; if this network reaches the Internet only through a proxy, set proxy.url in the config");
    const skewed = { request: async () => ({ status: 404, headers: { date: new Date(Date.now() + 3_600_000 + 20_000).toUTCString() }, body: Buffer.alloc(0) }) };
    const clock = await checkClock('https://id.example', skewed as never, Date.now, { box: bare });
    assert.ok(!clock.ok);
    assert.doesNotMatch(clock.fix, /timedatectl|timesyncd\.conf/);
    assert.match(clock.fix, /^fix the time sync: date shows the time this box has; start this box's NTP client/);
  });

  test('idNames reads /etc/passwd and /etc/group lines', () => {
    assert.deepEqual([...idNames('root:x:0:0:root:/root:/bin/bash\npos-token-agent:x:990:990::/var/lib/pos-token-agent:/usr/sbin/nologin\n\n#bad\n')], [
      [0, 'root'],
      [990, 'pos-token-agent'],
    ]);
  });
});

describe('doctor: state fixes by cause, on real files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pta-fixes-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;

  /** A config in its own directory, with stateDir `stateDir` (default: a state directory there that exists). */
  function configAt(stateDir?: string): { path: string; stateDir: string } {
    const here = join(dir, String(n++));
    mkdirSync(here);
    const state = stateDir ?? join(here, 'state');
    if (!stateDir) mkdirSync(state, { mode: 0o700 });
    const path = join(here, 'config.json');
    writeFileSync(path, JSON.stringify({ socket: join(here, 'agent.sock'), stateDir: state, accounts: { shop1: { authority: 'oauth2', tokenUrl: 'http://127.0.0.1:9/t' } } }));
    return { path, stateDir: state };
  }

  const root: Partial<BoxFacts> = { uid: 0, command: (c) => ['pos-token-agent-provision', 'systemd-tmpfiles'].includes(c) };

  test('a state directory that does not exist: who makes it depends on who runs the agent; never install.sh', async () => {
    const cases: Array<[string, boolean, Partial<BoxFacts>, RegExp]> = [
      ['by hand', false, root, /^run: pos-token-agent provision --account shop1 \(it makes \S+, mode 0700\)$/],
      ['systemd, another directory', true, root, /^make it, owned by the agent's user: install -d -m 0700 -o pos-token-agent -g pos-token-agent \S+$/],
    ];
    for (const [what, managed, box, fix] of cases) {
      const { path } = configAt(join(dir, `gone-${n}`));
      const state = await checkState(loadConfig(path, {}), { deps: { env: {} }, box: { ...fakeBox({ uid: 0 }), access: accessSync, stat: () => undefined, exists: () => false, ...box }, managed });
      const c = state.checks.find((x) => x.name === 'state.directory')!;
      assert.equal(c.status, 'fail', what);
      assert.match(c.fix!, fix, what);
      assert.doesNotMatch(c.fix!, /install\.sh/, what);
    }
    // The unit's own directory: tmpfiles.d as the package does, when its file is there, else the service's StateDirectory=.
    const unit = '/var/lib/pos-token-agent';
    const fake = { ...fakeBox({ uid: 0, files: {} }), ...root };
    const { path } = configAt(join(dir, `unused-${n}`));
    const cfg = { ...loadConfig(path, {}), stateDir: unit };
    const withTmpfiles = await checkState(cfg, { deps: { env: {} }, box: { ...fake, exists: (p) => p === '/usr/lib/tmpfiles.d/pos-token-agent.conf' }, managed: true });
    assert.equal(withTmpfiles.checks[0]!.fix, 'make it as the package does: systemd-tmpfiles --create pos-token-agent.conf');
    const without = await checkState(cfg, { deps: { env: {} }, box: fake, managed: true });
    assert.equal(without.checks[0]!.fix, 'start the service, whose StateDirectory= makes it: systemctl start pos-token-agent');
  });

  test('a state directory doctor may not enter: permission denied with sudo, and nothing else claimed about the state', async () => {
    const { path, stateDir } = configAt();
    const refuse = (p: string, mode: number): void => {
      if (p === stateDir) throw Object.assign(new Error('EACCES'), { code: 'EACCES' });
      accessSync(p, mode);
    };
    const report = await runDoctor({ configPath: path, env: {}, noLogin: true, box: { uid: TECH, access: refuse, command: (c) => c === 'sudo', userName: (u) => USERS.get(u) } });
    const check = (name: string) => report.checks.find((c) => c.name === name)!;
    assert.equal(check('state.directory').status, 'fail');
    assert.match(check('state.directory').detail, new RegExp(`^permission denied: doctor, running as user tech, cannot look inside ${stateDir}: ${stateDir} is 0700 `));
    assert.equal(check('state.directory').fix, 'run doctor as root: sudo pos-token-agent doctor');
    assert.equal(check('state.database').detail, 'not checked: doctor may not look inside the state directory');
    assert.equal(check('shop1.credentials').status, 'skipped', 'not "run provision": nothing says the box lacks credentials');
    assert.ok(!report.checks.some((c) => c.name === 'state.key'), 'no claim that the key is missing');
  });

  test('credentials missing where systemd runs the agent: the set-up with sudo, not provision run as root', async () => {
    const { path } = configAt();
    const report = await runDoctor({ configPath: path, env: {}, noLogin: true, managedBySystemd: true, box: { uid: TECH, command: (c) => ['sudo', 'pos-token-agent-provision'].includes(c) } });
    const c = report.checks.find((x) => x.name === 'shop1.credentials')!;
    assert.equal(c.fix, 'run: sudo pos-token-agent-provision --account shop1');
  });

  test('the socket refusing doctor\'s user: the clients group, not "restart the agent"', async () => {
    const { path } = configAt();
    const socketOf = (JSON.parse(readFileSync(path, 'utf8')) as { socket: string }).socket;
    const server = createServer((c) => c.destroy());
    await new Promise<void>((resolve) => server.listen(socketOf, resolve));
    try {
      chmodSync(socketOf, 0o660);
      const refused = async (): Promise<never> => {
        throw new AgentClientError('permission_denied', `permission denied on ${socketOf}`, socketOf);
      };
      const report: DoctorReport = await runDoctor({
        configPath: path,
        env: {},
        noLogin: true,
        agent: () => ({ status: refused, health: refused }),
        box: {
          uid: TECH,
          command: (c) => ['sudo', 'usermod'].includes(c),
          access: (p, mode) => {
            if (p === socketOf) throw Object.assign(new Error('EACCES'), { code: 'EACCES' });
            accessSync(p, mode);
          },
          stat: (p) => (p === socketOf ? { mode: 0o140660, uid: AGENT, gid: CLIENTS, isDirectory: () => false } : undefined),
          userName: (u) => USERS.get(u),
          groupName: (g) => GROUPS.get(g),
        },
      });
      const c = report.checks.find((x) => x.name === 'socket')!;
      assert.equal(c.status, 'fail');
      assert.match(c.detail, new RegExp(`cannot connect to ${socketOf}: ${socketOf} is 0660 pos-token-agent:pos-token-clients`));
      assert.equal(c.fix, 'add your user to the group pos-token-clients (sudo usermod -aG pos-token-clients $USER, then log in again), or run doctor as root: sudo pos-token-agent doctor');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
