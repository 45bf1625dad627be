import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { describeAgentStatus } from '../../src/cli/commands/run.js';
import { FakeClock, flushMicrotasks } from '../../src/lib/clock.js';
import { createLogger } from '../../src/lib/log.js';
import {
  createNotifier,
  listenFds,
  notifyArgs,
  watchdogInterval,
  type NotifyChild,
  type SpawnFn,
} from '../../src/lib/systemd.js';
import type { AccountStatusBody, ConfigStatusBody } from '../../src/api/index.js';
import { reloadOutcome } from '../../src/cli/commands/reload.js';

describe('listenFds', () => {
  const PID = 4242;

  test('no variables: no sockets', () => {
    assert.deepEqual(listenFds({}, { pid: PID }), []);
  });

  test('fds start at 3, named from LISTEN_FDNAMES, and the variables are removed', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: String(PID), LISTEN_FDS: '2', LISTEN_FDNAMES: 'api:metrics', OTHER: 'x' };
    assert.deepEqual(listenFds(env, { pid: PID }), [
      { fd: 3, name: 'api' },
      { fd: 4, name: 'metrics' },
    ]);
    assert.deepEqual(env, { OTHER: 'x' });
  });

  test('without names, or with the wrong number of names, the fds are "unknown"', () => {
    assert.deepEqual(listenFds({ LISTEN_PID: String(PID), LISTEN_FDS: '1' }, { pid: PID }), [{ fd: 3, name: 'unknown' }]);
    assert.deepEqual(listenFds({ LISTEN_PID: String(PID), LISTEN_FDS: '2', LISTEN_FDNAMES: 'only-one' }, { pid: PID }), [
      { fd: 3, name: 'unknown' },
      { fd: 4, name: 'unknown' },
    ]);
  });

  test('sockets meant for another process are ignored, and the variables still removed', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '1', LISTEN_FDS: '1' };
    assert.deepEqual(listenFds(env, { pid: PID }), []);
    assert.deepEqual(env, {});
  });

  test('malformed values give no sockets', () => {
    for (const [pid, fds] of [
      [String(PID), '0'],
      [String(PID), '-1'],
      [String(PID), 'abc'],
      [String(PID), '1.5'],
      [String(PID), '1000'],
      [String(PID), ''],
      [`${PID}x`, '1'],
      ['', '1'],
      ['0', '1'],
    ] as const) {
      assert.deepEqual(listenFds({ LISTEN_PID: pid, LISTEN_FDS: fds }, { pid: PID }), [], `${pid} ${fds}`);
    }
    assert.deepEqual(listenFds({ LISTEN_FDS: '1' }, { pid: PID }), [], 'LISTEN_PID is required');
  });

  test('unsetEnv: false leaves the environment alone', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: String(PID), LISTEN_FDS: '1' };
    assert.equal(listenFds(env, { pid: PID, unsetEnv: false }).length, 1);
    assert.deepEqual(env, { LISTEN_PID: String(PID), LISTEN_FDS: '1' });
  });

  test('defaults to process.env and process.pid', () => {
    process.env.LISTEN_PID = String(process.pid);
    process.env.LISTEN_FDS = '1';
    assert.deepEqual(listenFds(), [{ fd: 3, name: 'unknown' }]);
    assert.equal(process.env.LISTEN_PID, undefined);
    assert.equal(process.env.LISTEN_FDS, undefined);
  });
});

class FakeChild extends EventEmitter implements NotifyChild {
  stderr = new PassThrough();
  killed: NodeJS.Signals[] = [];
  constructor(readonly args: string[]) {
    super();
  }
  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    this.killed.push(signal);
    setImmediate(() => this.emit('close', null, signal));
    return true;
  }
  exit(code = 0, stderr = ''): void {
    if (stderr) this.stderr.write(stderr);
    this.emit('close', code, null);
  }
}

function harness(env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/systemd/notify' }, options: { timeoutMs?: number; pid?: number } = {}) {
  const clock = new FakeClock();
  const children: FakeChild[] = [];
  const calls: Array<{ command: string; args: string[]; env: NodeJS.ProcessEnv }> = [];
  const spawn: SpawnFn = (command, args, opts) => {
    calls.push({ command, args, env: opts.env });
    const child = new FakeChild(args);
    children.push(child);
    return child;
  };
  const logs: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'debug', write: (l) => logs.push(JSON.parse(l) as Record<string, unknown>) });
  const notifier = createNotifier({ env, log, clock, spawn, timeoutMs: options.timeoutMs ?? 1000, pid: options.pid ?? 77 });
  const running = () => children.filter((c) => c.listenerCount('close') > 0);
  return { clock, children, calls, logs, notifier, running };
}

describe('notifier', () => {
  test('without NOTIFY_SOCKET it does nothing at all', async () => {
    const h = harness({ WATCHDOG_USEC: '400000' });
    assert.equal(h.notifier.enabled, false);
    assert.equal(h.notifier.watchdogIntervalMs, undefined);
    h.notifier.ready('up');
    h.notifier.status('s');
    h.notifier.watchdog();
    h.notifier.reloading();
    h.notifier.stopping();
    h.notifier.startWatchdog();
    assert.equal(h.clock.pendingTimers, 0);
    await h.clock.advance(10_000);
    assert.equal(h.calls.length, 0);
    await h.notifier.close();
  });

  test('runs systemd-notify with the message as arguments and the environment', () => {
    const h = harness({ NOTIFY_SOCKET: '/run/systemd/notify', PATH: '/usr/bin' });
    h.notifier.ready('serving: default fresh');
    assert.equal(h.calls.length, 1);
    assert.equal(h.calls[0]!.command, 'systemd-notify');
    assert.deepEqual(h.calls[0]!.args, ['--ready', '--status=serving: default fresh']);
    assert.equal(h.calls[0]!.env.NOTIFY_SOCKET, '/run/systemd/notify');
  });

  test('arguments of every kind of message', () => {
    assert.deepEqual(notifyArgs({ state: 'READY' }), ['--ready']);
    assert.deepEqual(notifyArgs({ state: 'RELOADING', status: 'r' }), ['RELOADING=1', '--status=r']);
    assert.deepEqual(notifyArgs({ state: 'STOPPING' }), ['STOPPING=1']);
    assert.deepEqual(notifyArgs({ status: 'a\nb\tc' }), ['--status=a b c']);
    assert.deepEqual(notifyArgs({ watchdog: true }), ['WATCHDOG=1']);
    const long = notifyArgs({ status: 'x'.repeat(500) })[0]!;
    assert.equal(long.length, '--status='.length + 200);
  });

  test('one state child at a time: later messages wait, statuses coalesce, state changes keep their order', async () => {
    const h = harness();
    h.notifier.ready('a');
    h.notifier.status('b');
    h.notifier.reloading('c');
    h.notifier.status('c2');
    h.notifier.ready('d');
    h.notifier.status('e');
    assert.equal(h.calls.length, 1, 'nothing else starts while the first runs');
    h.children[0]!.exit(0);
    await flushMicrotasks();
    assert.deepEqual(h.calls[1]!.args, ['RELOADING=1', '--status=c2'], 'the status before it joined the reload');
    h.children[1]!.exit(0);
    await flushMicrotasks();
    assert.deepEqual(h.calls[2]!.args, ['--ready', '--status=e']);
    h.children[2]!.exit(0);
    await flushMicrotasks();
    assert.equal(h.calls.length, 3, 'nothing left to send');
    h.notifier.status('f');
    assert.deepEqual(h.calls[3]!.args, ['--status=f'], 'a bare status carries no state');
  });

  test('a burst of state changes keeps only the latest few', async () => {
    const h = harness();
    h.notifier.status('running');
    for (let i = 0; i < 10; i++) {
      h.notifier.reloading(`r${i}`);
      h.notifier.ready(`ok${i}`);
    }
    h.notifier.stopping('bye');
    for (let i = 0; i < 10 && h.children[i]; i++) {
      h.children[i]!.exit(0);
      await flushMicrotasks();
    }
    assert.deepEqual(h.calls[0]!.args, ['--status=running']);
    assert.deepEqual(
      h.calls.slice(1).map((c) => c.args),
      [
        ['--ready', '--status=ok8'],
        ['RELOADING=1', '--status=r9'],
        ['--ready', '--status=ok9'],
        ['STOPPING=1', '--status=bye'],
      ],
    );
  });

  test('a watchdog ping is dropped while one is in flight, and does not wait for state messages', async () => {
    const h = harness();
    h.notifier.ready('a');
    h.notifier.watchdog();
    h.notifier.watchdog();
    h.notifier.watchdog();
    assert.deepEqual(
      h.calls.map((c) => c.args),
      [['--ready', '--status=a'], ['WATCHDOG=1']],
    );
    h.children[1]!.exit(0);
    await flushMicrotasks();
    h.notifier.watchdog();
    assert.equal(h.calls.length, 3);
    assert.deepEqual(h.calls[2]!.args, ['WATCHDOG=1']);
  });

  test('a child that hangs is killed after the timeout, and the next message goes out', async () => {
    const h = harness(undefined, { timeoutMs: 1000 });
    h.notifier.ready('a');
    h.notifier.status('b');
    await h.clock.advance(999);
    assert.deepEqual(h.children[0]!.killed, []);
    await h.clock.advance(1);
    assert.deepEqual(h.children[0]!.killed, ['SIGKILL']);
    await flushMicrotasks();
    assert.equal(h.calls.length, 2);
    assert.deepEqual(h.calls[1]!.args, ['--status=b']);
    assert.ok(h.logs.some((l) => l.level === 'warn' && /did not finish in time/.test(String(l.msg))));
    h.children[1]!.exit(0);
    await flushMicrotasks();
    assert.equal(h.clock.pendingTimers, 0, 'the timeout timer of a finished child is cancelled');
  });

  test('a failing systemd-notify is logged with its exit code and stderr', async () => {
    const h = harness();
    h.notifier.ready();
    h.children[0]!.stderr.write('Failed to notify init system: Connection refused\n');
    await flushMicrotasks();
    h.children[0]!.exit(1);
    await flushMicrotasks();
    const warn = h.logs.find((l) => l.msg === 'systemd-notify failed');
    assert.equal(warn?.code, 1);
    assert.match(String(warn?.stderr), /Connection refused/);
  });

  test('a missing systemd-notify is logged once and never run again', async () => {
    const h = harness({ NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '1000000' });
    h.notifier.startWatchdog();
    h.notifier.ready('a');
    h.notifier.status('queued');
    const enoent = Object.assign(new Error('spawn systemd-notify ENOENT'), { code: 'ENOENT' });
    h.children[0]!.emit('error', enoent);
    await flushMicrotasks();
    h.notifier.status('b');
    h.notifier.watchdog();
    await h.clock.advance(5_000);
    assert.equal(h.calls.length, 1);
    assert.equal(h.logs.filter((l) => l.level === 'error').length, 1);
    assert.match(String(h.logs.find((l) => l.level === 'error')?.msg), /systemd-notify not found/);
    await h.notifier.close();
  });

  test('spawn throwing synchronously counts as a failed child', async () => {
    const logs: string[] = [];
    const notifier = createNotifier({
      env: { NOTIFY_SOCKET: '/x' },
      log: createLogger({ write: (l) => logs.push(l) }),
      clock: new FakeClock(),
      spawn: () => {
        throw Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' });
      },
    });
    notifier.ready();
    notifier.status('again');
    await notifier.close();
    assert.equal(logs.filter((l) => /cannot run systemd-notify/.test(l)).length, 2);
  });

  test('close() stops the watchdog and waits for notifications in flight', async () => {
    const h = harness({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '400000' });
    h.notifier.startWatchdog();
    h.notifier.stopping('bye');
    let closed = false;
    const done = h.notifier.close().then(() => (closed = true));
    await flushMicrotasks();
    assert.equal(closed, false);
    h.children[0]!.exit(0);
    await done;
    await h.clock.advance(10_000);
    assert.equal(h.calls.length, 1, 'no watchdog after close');
  });
});

describe('watchdog', () => {
  test('the interval is half of WATCHDOG_USEC, for this pid or any when WATCHDOG_PID is unset', () => {
    assert.equal(watchdogInterval({ WATCHDOG_USEC: '400000' }, 7), 200);
    assert.equal(watchdogInterval({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '7' }, 7), 30_000);
    assert.equal(watchdogInterval({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '8' }, 7), undefined);
    assert.equal(watchdogInterval({ WATCHDOG_USEC: '1' }, 7), 1);
    for (const bad of ['', '0', '-5', 'abc', '1e6']) assert.equal(watchdogInterval({ WATCHDOG_USEC: bad }, 7), undefined, bad);
    assert.equal(watchdogInterval({}, 7), undefined);
  });

  test('WATCHDOG=1 every half interval on the clock', async () => {
    const h = harness({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '400000' });
    assert.equal(h.notifier.watchdogIntervalMs, 200);
    h.notifier.startWatchdog();
    h.notifier.startWatchdog();
    assert.equal(h.clock.pendingTimers, 1, 'started once');
    await h.clock.advance(199);
    assert.equal(h.calls.length, 0);
    await h.clock.advance(1);
    assert.deepEqual(h.calls.map((c) => c.args), [['WATCHDOG=1']]);
    h.children[0]!.exit(0);
    await h.clock.advance(200);
    assert.equal(h.calls.length, 2);
    // A ping still in flight at the next tick: that tick is dropped, the one after goes out.
    await h.clock.advance(200);
    assert.equal(h.calls.length, 2);
    h.children[1]!.exit(0);
    await h.clock.advance(200);
    assert.equal(h.calls.length, 3);
    h.children[2]!.exit(0);
    await h.notifier.close();
    await h.clock.advance(1_000);
    assert.equal(h.calls.length, 3, 'no ping after close');
  });

  test('no watchdog for another process (WATCHDOG_PID)', async () => {
    const h = harness({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '400000', WATCHDOG_PID: '1' }, { pid: 77 });
    h.notifier.startWatchdog();
    assert.equal(h.clock.pendingTimers, 0);
    await h.clock.advance(5_000);
    assert.equal(h.calls.length, 0);
  });
});

describe('STATUS line', () => {
  const base: Pick<AccountStatusBody, 'state' | 'expires_at' | 'last_error'> = { state: 'fresh', expires_at: null, last_error: null };
  const now = Date.UTC(2026, 0, 1, 12, 0, 0);

  test('names accounts, states and time left, never a token', () => {
    assert.equal(
      describeAgentStatus({ default: { ...base, expires_at: new Date(now + 41 * 60_000 + 5_000).toISOString() } }, now),
      'serving: default fresh, expires in 41 min',
    );
    assert.equal(
      describeAgentStatus(
        {
          a: { ...base, state: 'stale', expires_at: new Date(now + 90_000).toISOString() },
          b: { ...base, state: 'none', last_error: { reason: 'not_provisioned', message: 'm', at: 'x' } },
          c: { ...base, state: 'expired', expires_at: new Date(now - 3 * 3600_000).toISOString() },
        },
        now,
      ),
      'serving: a stale, expires in 90 s; b none (not_provisioned); c expired, expired 3 h ago',
    );
    assert.equal(describeAgentStatus({}, now), 'serving: no accounts');
  });

  test('an account with entries waiting in its outbox says how many and how old the oldest is; an empty outbox adds nothing', () => {
    const outbox = { queued: 3, oldest_queued_s: 150, last_delivered_at: null, last_error: 'connect ECONNREFUSED' };
    assert.equal(
      describeAgentStatus(
        {
          default: { ...base, expires_at: new Date(now + 41 * 60_000 + 5_000).toISOString(), outbox },
          b: { ...base, state: 'none', last_error: { reason: 'not_provisioned', message: 'm', at: 'x' }, outbox: { ...outbox, queued: 1, oldest_queued_s: 30 } },
          c: { ...base, outbox: { ...outbox, queued: 0, oldest_queued_s: null } },
        },
        now,
      ),
      'serving: default fresh, expires in 41 min, outbox 3 queued (oldest 2 min); b none (not_provisioned), outbox 1 queued (oldest 30 s); c fresh',
    );
  });
});

const REPO = resolve(import.meta.dirname, '../..');

/** The Exec*= lines of a unit file: [key, the command line less systemd's prefixes (-, @, +, !, :)]. */
function execLines(unit: string): Array<[string, string]> {
  return [...unit.matchAll(/^(Exec[A-Za-z]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!.trim().replace(/^[-@+!:]+/, '')]);
}

describe('the unit files need nothing beyond the package and its Depends', () => {
  const service = readFileSync(join(REPO, 'systemd/pos-token-agent.service'), 'utf8');
  const socket = readFileSync(join(REPO, 'systemd/pos-token-agent.socket'), 'utf8');
  const packaging = readFileSync(join(REPO, 'scripts/package.mjs'), 'utf8');
  /** The package's own: the runtime (package.mjs and install.sh point it at the bundled or chosen node) and the program. */
  const OWN_RUNTIME = '/usr/bin/node';
  const OWN_PROGRAM = '/opt/pos-token-agent/dist/cli/main.js';
  /** V8's limits for the agent (weighed in docs/development.md), on every command the unit runs and in the wrapper. */
  const NODE_FLAGS = '--max-semi-space-size=2 --max-old-space-size=64';
  /**
   * Files of the packages the .deb depends on that a unit may run, with their package. Empty: the units run only
   * the package's own program. Add a file here only with the package that ships it on Debian 12 and Ubuntu 22.04.
   */
  const FROM_DEPENDS: Record<string, string> = {};
  const depends = (/`Depends: ([^`]*)`/.exec(packaging)?.[1] ?? '').split(',').map((d) => d.trim().split(/[\s(]/)[0]!);

  test('package.mjs declares the Depends this check knows', () => {
    assert.deepEqual(depends, ['libc6', 'libgcc-s1', 'libstdc++6', 'systemd']);
    for (const [file, pkg] of Object.entries(FROM_DEPENDS)) assert.ok(depends.includes(pkg), `${file}: ${pkg} is not in Depends`);
  });

  test("every Exec*= runs the package's own program, or a file of a package in Depends", () => {
    const lines = [...execLines(service), ...execLines(socket)];
    assert.ok(lines.some(([k]) => k === 'ExecStart') && lines.some(([k]) => k === 'ExecReload'), 'ExecStart= and ExecReload= are checked');
    for (const [key, command] of lines) {
      const [exe, ...args] = command.split(/\s+/);
      // The runtime's own flags (V8's, checked below) come before the program.
      const arg = args.find((a) => !a.startsWith('--'));
      if (exe === OWN_RUNTIME) assert.equal(arg, OWN_PROGRAM, `${key}: the runtime runs the program only`);
      else assert.ok(exe! in FROM_DEPENDS, `${key}=${command}: ${exe} is neither the package's own nor in FROM_DEPENDS (procps's /bin/kill is not on a minimal Debian)`);
    }
  });

  test('the agent runs with V8\'s memory limits and a compile cache in its CacheDirectory', () => {
    assert.equal(execLines(service).find(([k]) => k === 'ExecStart')![1], `${OWN_RUNTIME} ${NODE_FLAGS} ${OWN_PROGRAM} run`);
    assert.match(service, /^CacheDirectory=pos-token-agent$/m);
    assert.match(service, /^CacheDirectoryMode=0700$/m);
    assert.match(packaging, /function nodeFlags\(unitText\)/, 'the package\'s command wrapper takes the flags from ExecStart');
    assert.match(readFileSync(join(REPO, 'scripts/install.sh'), 'utf8'), /flags=\$\(sed -n 's#\^ExecStart=/, 'so does install.sh\'s');
  });

  test("ExecReload asks the agent's own CLI, which waits for the agent's answer (a refused config fails the reload)", () => {
    const reload = execLines(service).find(([k]) => k === 'ExecReload')![1];
    assert.equal(reload, `${OWN_RUNTIME} ${NODE_FLAGS} ${OWN_PROGRAM} reload --pid $MAINPID --socket /run/pos-token-agent/agent.sock`);
    assert.match(readFileSync(join(REPO, 'src/cli/cli.ts'), 'utf8'), /^ {2}reload: \{$/m, 'cli.ts has the reload command');
    assert.match(socket, /^ListenStream=\/run\/pos-token-agent\/agent\.sock$/m, 'the socket the reload asks is the one systemd holds');
    // The reload waits less than systemd gives it (TimeoutStartSec= bounds ExecReload=), so its own message is the one seen.
    assert.match(service, /^TimeoutStartSec=90s$/m);
  });
});

describe('reloadOutcome', () => {
  const before: ConfigStatusBody = { path: '/etc/c.json', sha256: 'a', generation: 3, loaded_at: '2026-01-01T00:00:00.000Z', reload_error: null };

  test('a new generation is taken; the same generation is pending', () => {
    assert.deepEqual(reloadOutcome(before, { ...before, generation: 4, sha256: 'b' }), { kind: 'taken', config: { ...before, generation: 4, sha256: 'b' } });
    assert.deepEqual(reloadOutcome(before, before), { kind: 'pending' });
  });

  test('a reload error newer than the one before is a refusal; the same old one is not', () => {
    const old = { at: '2026-01-01T00:00:01.000Z', problems: ['old'] };
    const refused = { ...before, reload_error: { at: '2026-01-01T00:00:02.000Z', problems: ['accounts.x: bad'] } };
    assert.deepEqual(reloadOutcome(before, refused), { kind: 'refused', problems: ['accounts.x: bad'] });
    assert.deepEqual(reloadOutcome({ ...before, reload_error: old }, { ...before, reload_error: old }), { kind: 'pending' });
    assert.deepEqual(reloadOutcome({ ...before, reload_error: old }, refused), { kind: 'refused', problems: ['accounts.x: bad'] });
  });
});
