/**
 * The amd64 .deb end to end under a real systemd: a Debian 12 minbase root (debootstrap, cached; no Node.js on
 * it) booted with systemd-nspawn. Inside: dpkg -i, non-interactive provisioning against the emulator, readiness,
 * the till's socket, KILL and watchdog restarts, socket activation, reload, a poweroff and boot with the
 * emulator down, the security rating, remove and purge, an upgrade from the previous version, and the journal.
 *
 * The emulator runs in this test process on 127.0.0.1: the container shares the host's network, so the agent
 * inside reaches it, and "the emulator is down" is emulator.stop(). The kernel is the host's: systemd-nspawn
 * mounts a boot_id of its own over /proc/sys/kernel/random/boot_id for each boot of the container, but the
 * service's sandbox mounts a procfs of its own and reads the kernel's, which a container reboot does not change.
 * So the agent takes a poweroff and boot for the same boot (the after-a-reboot path, wall clock only, is not
 * exercised here; a real VM would), and a token stored by provisioning, which runs outside the sandbox and
 * records the container's boot_id, is restored by the wall clock. The tests say which path each restore took.
 *
 * Run with `npm run test:system` after `npm run package` (as root; the tests run in order on one container).
 * Figures (install time, start to ready, memory, socket activation) go to release/system-test-figures.json.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { configFileSha256 } from '../../src/config/index.js';
import { createEmulator, DEMO_DEVICE, type Emulator } from '../../src/emulator/index.js';
import { ask, forceRefresh } from '../support/harness.js';
import {
  BASE_PACKAGES,
  bookwormRoot,
  debFields,
  debFile,
  dependsNames,
  describe as describeRun,
  freshRoot,
  Machine,
  NAME,
  must,
  previousVersionPackage,
  provisionInside,
  demoProvisionEnv,
  recordFigures,
  removeRoot,
  bootedSystemSkip,
  sleep,
  VERSION,
  waitUntil,
  type PreviousPackage,
  type RunResult,
} from './support.js';

const SKIP = bootedSystemSkip();

const SERVICE = 'pos-token-agent.service';
const SOCKET = 'pos-token-agent.socket';
const SOCKET_PATH = '/run/pos-token-agent/agent.sock';
const CONFIG = '/etc/pos-token-agent/config.json';
const STATE_DB = '/var/lib/pos-token-agent/state.db';
const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/;
const MIB = 1024 * 1024;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const round = (x: number, digits = 0): number => Math.round(x * 10 ** digits) / 10 ** digits;

describe('the .deb under a booted systemd (Debian 12 in systemd-nspawn)', { skip: SKIP }, () => {
  const figures: Record<string, unknown> = {};
  let work = '';
  let m: Machine;
  let emulator: Emulator;
  let previous: Promise<PreviousPackage>;
  let deb = '';
  /** The env file provisioning reads (0600), as a fleet tool would write it. */
  let provisionEnv = '';
  /** The token of the stored default account, as the till last saw it. */
  let token = '';

  const logins = (): number => emulator.stats().requests;
  const tillToken = async (user = 'till'): Promise<RunResult> => m.exec(['pos-token-agent', 'token'], { user, timeoutMs: 60_000 });
  const show = (props: string[]): Promise<Record<string, string>> => m.show(SERVICE, props);
  /** The agent's socket from here (the container's /run through /proc/INIT/root): root's view, for status and refresh. */
  const agentStatus = async (): Promise<Record<string, unknown>> => {
    const a = await ask(m.livePath(SOCKET_PATH), '/v1/status');
    assert.equal(a.status, 200, a.text);
    return a.json;
  };
  const accountState = async (name = 'default'): Promise<string | undefined> =>
    ((await agentStatus()).accounts as Record<string, { state: string }> | undefined)?.[name]?.state;
  /** Waits until the service is active (running) with a main pid other than `oldPid`. */
  const waitActive = (what: string, timeoutMs: number, oldPid?: string): Promise<Record<string, string>> =>
    waitUntil(
      what,
      async () => {
        const p = await show(['ActiveState', 'SubState', 'MainPID', 'NRestarts', 'StatusText', 'Result']);
        return p.ActiveState === 'active' && p.SubState === 'running' && p.MainPID !== '0' && p.MainPID !== oldPid ? p : undefined;
      },
      timeoutMs,
    );
  /**
   * Forgets the units' start counts: the tests start the agent more often than a box ever would (five restarts to
   * measure, then KILL, watchdog, stop and socket activation within seconds), which would otherwise run into
   * systemd's default start limit (5 starts in 10 s) and leave the socket failed with 'service-start-limit-hit'.
   */
  const resetStartLimit = async (): Promise<void> => {
    must('systemctl reset-failed', await m.exec(['systemctl', 'reset-failed', SERVICE, SOCKET]));
  };
  const copyIn = (file: string): string => {
    mkdirSync(m.hostPath('/root/debs'), { recursive: true });
    copyFileSync(file, m.hostPath(`/root/debs/${basename(file)}`));
    return `/root/debs/${basename(file)}`;
  };
  const dpkg = (args: string[], timeoutMs = 5 * 60_000): Promise<RunResult> =>
    m.exec(['dpkg', ...args], { env: { DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs });
  /** /usr/sbin/pos-token-agent-provision --non-interactive --from an env file; `env` for the old version's script. */
  const provision = (env: Record<string, string> = {}): Promise<RunResult> => provisionInside(m, provisionEnv, env);

  before(
    async () => {
      deb = debFile('amd64');
      if (!existsSync(deb)) throw new Error(`${deb} is missing: run npm run package first`);
      // Needed by the upgrade test only, but made now: on a cold cache it builds while debootstrap runs, and
      // it is done before anything is measured. Its failure is the upgrade test's to report.
      previous = previousVersionPackage('amd64', (s) => console.log(`# ${s}`));
      previous.catch(() => {});
      const depends = dependsNames((await debFields(deb)).Depends);
      const cached = await bookwormRoot([...BASE_PACKAGES, ...depends], (s) => console.log(`# ${s}`));
      await previous.catch(() => undefined);
      work = mkdtempSync(join(tmpdir(), 'pta-system-'));
      await freshRoot(cached, join(work, 'root'));
      emulator = createEmulator({ devices: [DEMO_DEVICE], rateLimitPerMinute: 0, host: '127.0.0.1', port: 0 });
      await emulator.start();
      provisionEnv = demoProvisionEnv(emulator.url);
      m = new Machine(join(work, 'root'), `pta-sys-${process.pid}`, join(work, 'console.log'));
      const boot = await m.boot();
      figures.boot_ms = Math.round(boot.ms);
      console.log(`# booted in ${Math.round(boot.ms)} ms (${boot.state}${boot.failedUnits ? `; failed: ${boot.failedUnits}` : ''}); logs in ${work}`);
    },
    { timeout: 30 * 60_000 },
  );

  after(
    async () => {
      if (m?.running) {
        // Kept for a look after a failure: the whole journal and the console.
        const j = await m.exec(['journalctl', '--no-pager', '-o', 'short-monotonic']).catch(() => undefined);
        if (j) writeFileSync(join(work, 'journal.txt'), j.stdout);
      }
      await m?.shutdown();
      await emulator?.stop();
      if (work) {
        removeRoot(join(work, 'root'));
        console.log(`# console log and journal kept in ${work}`);
      }
      if (Object.keys(figures).length) recordFigures('systemd', figures);
    },
    { timeout: 3 * 60_000 },
  );

  it('boots a root without Node.js and installs the .deb with dpkg -i', { timeout: 10 * 60_000 }, async (t: TestContext) => {
    const node = await m.sh('command -v node; command -v nodejs; ls /usr/bin/node* /usr/local/bin/node* 2>/dev/null; true');
    assert.equal(node.stdout.trim(), '', 'no Node.js on the box before the install');
    // Nothing beyond minbase and the package's Depends: no procps (whose /bin/kill the unit once needed), no dbus.
    const extra = await m.sh('for p in procps dbus systemd-sysv ca-certificates; do dpkg-query -W -f \'${Status} ${Package}\\n\' "$p" 2>/dev/null | grep "^install ok installed" || true; done; ls /bin/kill /usr/bin/kill 2>/dev/null; true');
    assert.equal(extra.stdout.trim(), '', 'a root with only what minbase and the Depends bring');
    const inside = copyIn(deb);
    const r = must('dpkg -i', await dpkg(['-i', inside]));
    figures.install_ms = Math.round(r.ms);
    t.diagnostic(`dpkg -i took ${Math.round(r.ms)} ms (${Math.round(statSync(deb).size / MIB)} MiB package)`);
    // A bound to catch a hang (a postinst waiting on something), not a speed target: measured in seconds here.
    assert.ok(r.ms < 180_000, `dpkg -i took ${Math.round(r.ms)} ms`);

    const q = must('dpkg-query', await m.exec(['dpkg-query', '-W', '-f', '${Status} ${Version}', 'pos-token-agent']));
    assert.equal(q.stdout, `install ok installed ${VERSION}`);
    must('the service user', await m.exec(['getent', 'passwd', 'pos-token-agent']));
    must('the clients group', await m.exec(['getent', 'group', 'pos-token-clients']));
    const v = must('pos-token-agent --version', await m.exec(['pos-token-agent', '--version']));
    assert.match(v.stdout, new RegExp(VERSION.replaceAll('.', '\\.')));
    const runtime = must('the bundled node', await m.exec(['/usr/lib/pos-token-agent/node/bin/node', '--version']));
    figures.bundled_node = runtime.stdout.trim();
    // The native module loads in the bundled runtime (built against its headers, for its ABI).
    must(
      'better-sqlite3 in the bundled runtime',
      await m.exec(['/usr/lib/pos-token-agent/node/bin/node', '-e', 'new (require("/usr/lib/pos-token-agent/node_modules/better-sqlite3"))(":memory:").close()']),
    );
    t.diagnostic(`bundled runtime ${runtime.stdout.trim()}; postinst said: ${r.stdout.trim()}`);
    // The socket is enabled and listening; the agent is not started before it has an account.
    assert.equal((await m.exec(['systemctl', 'is-enabled', SOCKET])).stdout.trim(), 'enabled');
    assert.equal((await m.exec(['systemctl', 'is-active', SOCKET])).stdout.trim(), 'active');
    assert.equal((await show(['ActiveState'])).ActiveState, 'inactive');
    const config = JSON.parse(readFileSync(m.hostPath(CONFIG), 'utf8')) as { accounts: object };
    assert.deepEqual(config.accounts, {}, 'the skeleton config has no accounts');
    const st = statSync(m.hostPath(CONFIG));
    assert.equal(st.mode & 0o777, 0o640);
    assert.equal(st.uid, 0);
  });

  it('provisions non-interactively; the service gets active through READY=1 with a STATUS= line', { timeout: 5 * 60_000 }, async (t) => {
    const before = logins();
    const cursor = await m.journalCursor();
    const r = must('pos-token-agent-provision --non-interactive', await provision());
    t.diagnostic(r.stdout.trim());
    assert.match(r.stdout, /Agent: +running; account default is fresh/);
    assert.match(r.stdout, /Doctor: +ok/);
    assert.ok(logins() > before, 'provisioning logged in once to check the credentials');
    const p = await waitActive('the service active after provisioning', 30_000);
    const more = await show(['Type', 'NotifyAccess', 'UnitFileState', 'StatusText', 'WatchdogUSec']);
    assert.equal(more.Type, 'notify');
    assert.equal(more.UnitFileState, 'enabled');
    assert.match(more.StatusText ?? '', /^serving: default fresh, expires in /);
    const status = must('systemctl status', await m.exec(['systemctl', 'status', '--no-pager', SERVICE]));
    assert.match(status.stdout, /Status: "serving: default fresh/);
    t.diagnostic(`StatusText: ${more.StatusText}; watchdog ${more.WatchdogUSec}`);
    // The sandbox as the kernel sees it: the service's user, no capabilities, no_new_privs, a seccomp filter.
    const proc = must('/proc/PID/status', await m.exec(['cat', `/proc/${p.MainPID}/status`])).stdout;
    const uid = must('id -u', await m.exec(['id', '-u', 'pos-token-agent'])).stdout.trim();
    assert.match(proc, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s`, 'm'));
    assert.match(proc, /^CapEff:\s+0+$/m);
    assert.match(proc, /^NoNewPrivs:\s+1$/m);
    assert.match(proc, /^Seccomp:\s+2$/m);
    // Provisioning (outside the sandbox) records the container's boot_id, the sandboxed agent reads the kernel's
    // (top of this file): the agent takes provisioning's token as another boot's and confirms it with one login at
    // once, as after a reboot. On a real box both read the same boot_id and the restore is login-free. The token
    // the next tests compare against is taken once that login is over.
    const path = await waitUntil('the restore and, after one by the wall clock, its confirming login', async () => {
      const j = await m.journalSince(cursor, SERVICE);
      const how = /"msg":"restored the stored token".*"measured_by":"([^"]+)"/.exec(j)?.[1];
      if (how === undefined) return undefined;
      return !how.startsWith('wall clock') || /"msg":"login succeeded"/.test(j) ? how : undefined;
    }, 30_000);
    t.diagnostic(`provisioning's token restored by ${path}`);
    const tok = await ask(m.livePath(SOCKET_PATH), '/v1/token');
    assert.equal(tok.status, 200, tok.text);
    token = String(tok.json.access_token);
  });

  it('measures start to ready and resident memory under systemd', { timeout: 5 * 60_000 }, async (t) => {
    const before = logins();
    const readyMs: number[] = [];
    const restartMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      await resetStartLimit();
      const r = must('systemctl restart', await m.exec(['systemctl', 'restart', SERVICE]));
      const p = await show(['ActiveState', 'InactiveExitTimestampMonotonic', 'ActiveEnterTimestampMonotonic']);
      assert.equal(p.ActiveState, 'active');
      // From the exec of the agent (leaving inactive) to READY=1 (entering active), by systemd's clock.
      readyMs.push((Number(p.ActiveEnterTimestampMonotonic) - Number(p.InactiveExitTimestampMonotonic)) / 1000);
      restartMs.push(r.ms);
    }
    const tok = await ask(m.livePath(SOCKET_PATH), '/v1/token');
    assert.equal(tok.status, 200);
    assert.equal(tok.json.access_token, token, 'restarts serve the stored token');
    assert.equal(logins(), before, 'no login on a restart');
    // A few requests, then a moment of idle, before memory is read.
    for (let i = 0; i < 20; i++) assert.equal((await ask(m.livePath(SOCKET_PATH), '/v1/token')).status, 200);
    await sleep(2_000);
    const p = await show(['MainPID', 'MemoryCurrent']);
    const proc = must('/proc/PID/status', await m.exec(['cat', `/proc/${p.MainPID}/status`])).stdout;
    const rssKiB = Number(/^VmRSS:\s+(\d+) kB$/m.exec(proc)?.[1]);
    const hwmKiB = Number(/^VmHWM:\s+(\d+) kB$/m.exec(proc)?.[1]);
    const memoryCurrent = /^\d+$/.test(p.MemoryCurrent ?? '') ? Number(p.MemoryCurrent) : undefined;
    const agentMemory = smapsFigures(must('smaps_rollup', await m.exec(['cat', `/proc/${p.MainPID}/smaps_rollup`])).stdout);
    const bare = await bareNode(m);
    Object.assign(figures, {
      agent_memory_mib: agentMemory,
      bare_node_memory_mib: bare.memory,
      bare_node_start_median_ms: bare.startMedianMs,
      start_to_ready_vs_bare_node: round(median(readyMs) / bare.startMedianMs, 2),
      start_to_ready_ms: readyMs.map((x) => round(x, 1)),
      start_to_ready_median_ms: round(median(readyMs), 1),
      systemctl_restart_median_ms: round(median(restartMs), 1),
      rss_mib: round(rssKiB / 1024, 1),
      rss_peak_mib: round(hwmKiB / 1024, 1),
      memory_current_mib: memoryCurrent === undefined ? `not available (${p.MemoryCurrent})` : round(memoryCurrent / MIB, 1),
    });
    t.diagnostic(
      `start to ready (InactiveExit to ActiveEnter) ${readyMs.map((x) => round(x)).join(', ')} ms, median ${round(median(readyMs))} ms; ` +
        `systemctl restart median ${round(median(restartMs))} ms; VmRSS ${round(rssKiB / 1024, 1)} MiB (peak ${round(hwmKiB / 1024, 1)}); ` +
        `MemoryCurrent ${p.MemoryCurrent}; smaps: agent ${JSON.stringify(agentMemory)}, bare node ${JSON.stringify(bare.memory)}; ` +
        `bare node -e '' median ${bare.startMedianMs} ms (start to ready ${round(median(readyMs) / bare.startMedianMs, 2)}x)`,
    );
    // Bounds with a wide margin, to catch a hang or a regression of several times, not jitter: docs/development.md's
    // targets are 400 ms to ready and 70 MiB idle (Node 20, outside systemd); this box's VM moves them 10-30%,
    // the bundled runtime is Node 24, and the first start after an install reads everything from disk.
    assert.ok(median(readyMs) < 3_000, `start to ready median ${median(readyMs)} ms`);
    assert.ok(rssKiB > 0 && rssKiB < 200 * 1024, `VmRSS ${rssKiB} kB`);
  });

  it('answers a till user in pos-token-clients, and no one else', { timeout: 2 * 60_000 }, async () => {
    must('useradd till', await m.exec(['useradd', '--no-create-home', '--shell', '/usr/sbin/nologin', 'till']));
    must('useradd other', await m.exec(['useradd', '--no-create-home', '--shell', '/usr/sbin/nologin', 'other']));
    must('usermod -aG', await m.exec(['usermod', '-aG', 'pos-token-clients', 'till']));
    const r = must('till: pos-token-agent token', await tillToken());
    assert.match(r.stdout.trim(), JWT);
    assert.equal(r.stdout.trim(), token);
    const other = await tillToken('other');
    assert.equal(other.code, 1, describeRun('other: pos-token-agent token', other));
    assert.match(other.stderr, /permission denied/i);
    assert.doesNotMatch(other.stdout, JWT);
    const sock = statSync(m.livePath(SOCKET_PATH));
    assert.equal(sock.mode & 0o777, 0o660);
    const dir = statSync(m.livePath('/run/pos-token-agent'));
    assert.equal(dir.mode & 0o777, 0o750, '/run/pos-token-agent is 0750 (tmpfiles.d)');
  });

  it('is restarted by systemd after KILL and serves the same token without a login', { timeout: 2 * 60_000 }, async (t) => {
    const before = logins();
    const p0 = await show(['MainPID', 'NRestarts']);
    const cursor = await m.journalCursor();
    await resetStartLimit();
    must('systemctl kill -s KILL', await m.exec(['systemctl', 'kill', '-s', 'KILL', SERVICE]));
    // A till asking meanwhile waits in the socket's queue (systemd holds the socket) and is answered.
    const during = await tillToken();
    const p1 = await waitActive('the restarted service', 30_000, p0.MainPID);
    assert.equal(Number(p1.NRestarts), Number(p0.NRestarts) + 1);
    assert.equal(during.code, 0, describeRun('till token during the restart', during));
    assert.equal(during.stdout.trim(), token);
    const r = must('till token', await tillToken());
    assert.equal(r.stdout.trim(), token);
    assert.equal(logins(), before, 'no login after the restart');
    const restored = /"msg":"restored the stored token".*"measured_by":"([^"]+)"/.exec(await m.journalSince(cursor, SERVICE));
    assert.ok(restored, 'the journal says the stored token was restored');
    t.diagnostic(`main pid ${p0.MainPID} -> ${p1.MainPID}, NRestarts ${p1.NRestarts}; token age measured by ${restored[1]}`);
  });

  it('is killed by the watchdog when it hangs (SIGSTOP) and restarted', { timeout: 3 * 60_000 }, async (t) => {
    // A test-only drop-in: WatchdogSec=6s instead of the unit's 60 s, so that a hang is noticed in 6 s rather
    // than a minute. The agent pings at half of it; the check below first waits past 6 s to see the pings work.
    const dropIn = m.hostPath('/etc/systemd/system/pos-token-agent.service.d/50-system-test-watchdog.conf');
    mkdirSync(join(dropIn, '..'), { recursive: true });
    writeFileSync(dropIn, '[Service]\nWatchdogSec=6s\n');
    try {
      must('daemon-reload', await m.exec(['systemctl', 'daemon-reload']));
      await resetStartLimit();
      must('restart', await m.exec(['systemctl', 'restart', SERVICE]));
      const p0 = await show(['MainPID', 'NRestarts', 'WatchdogUSec']);
      assert.equal(p0.WatchdogUSec, '6s');
      await sleep(9_000);
      const alive = await show(['MainPID', 'ActiveState', 'WatchdogTimestampMonotonic', 'ActiveEnterTimestampMonotonic']);
      assert.equal(alive.MainPID, p0.MainPID, 'the pinging agent outlives WatchdogSec');
      assert.ok(Number(alive.WatchdogTimestampMonotonic) > Number(alive.ActiveEnterTimestampMonotonic), 'WATCHDOG=1 arrived after READY=1');
      const cursor = await m.journalCursor();
      const before = logins();
      await resetStartLimit();
      // The shell's own kill: the root has no procps (/bin/kill).
      must('kill -STOP', await m.exec(['sh', '-c', 'kill -STOP "$1"', 'sh', p0.MainPID!]));
      const t0 = Date.now();
      // 6 s watchdog, SIGABRT (systemd sends SIGCONT after it), RestartSec=2s, a start: well under 40 s.
      const p1 = await waitActive('the service restarted after the watchdog', 40_000, p0.MainPID);
      t.diagnostic(`hung agent replaced in ${Date.now() - t0} ms (main pid ${p0.MainPID} -> ${p1.MainPID})`);
      figures.watchdog_replace_ms = Date.now() - t0;
      assert.equal(Number(p1.NRestarts), Number(p0.NRestarts) + 1);
      const journal = await m.journalSince(cursor, SERVICE);
      assert.match(journal, /Watchdog timeout/);
      const r = must('till token', await tillToken());
      assert.equal(r.stdout.trim(), token);
      assert.equal(logins(), before, 'no login after the watchdog restart');
    } finally {
      rmSync(join(dropIn, '..'), { recursive: true, force: true });
      must('daemon-reload', await m.exec(['systemctl', 'daemon-reload']));
      await resetStartLimit();
      must('restart', await m.exec(['systemctl', 'restart', SERVICE]));
    }
    assert.equal((await show(['WatchdogUSec'])).WatchdogUSec, '1min');
  });

  it('is started by a till request on the socket after systemctl stop', { timeout: 2 * 60_000 }, async (t) => {
    await resetStartLimit();
    must('systemctl stop', await m.exec(['systemctl', 'stop', SERVICE]));
    assert.equal((await show(['ActiveState'])).ActiveState, 'inactive');
    assert.equal((await m.exec(['systemctl', 'is-active', SOCKET])).stdout.trim(), 'active', 'the socket stays');
    const before = logins();
    const r = must('till token (socket activation)', await tillToken());
    assert.equal(r.stdout.trim(), token);
    assert.equal(logins(), before);
    await waitActive('the socket-activated service', 10_000);
    figures.socket_activation_ms = Math.round(r.ms);
    t.diagnostic(`a till request on the stopped service was answered in ${Math.round(r.ms)} ms (runuser + CLI + start)`);
  });

  it('applies a config change on reload and refuses a bad one, keeping the running config', { timeout: 2 * 60_000 }, async (t) => {
    const file = m.hostPath(CONFIG);
    const original = readFileSync(file, 'utf8');
    const config = JSON.parse(original) as { accounts: Record<string, Record<string, unknown>> };
    const p0 = await show(['MainPID']);
    try {
      // A second account: its state shows in /v1/status and in the STATUS= line.
      config.accounts.second = { ...config.accounts.default };
      writeFileSync(file, JSON.stringify(config, null, 2));
      let cursor = await m.journalCursor();
      must('systemctl reload', await m.exec(['systemctl', 'reload', SERVICE]));
      await waitUntil('"config reloaded" in the journal', async () => /config reloaded/.test(await m.journalSince(cursor, SERVICE)), 15_000);
      const p1 = await waitUntil(
        'the STATUS= line naming the new account',
        async () => {
          const p = await show(['StatusText', 'MainPID', 'ActiveState']);
          return /second/.test(p.StatusText ?? '') ? p : undefined;
        },
        15_000,
      );
      assert.equal(p1.MainPID, p0.MainPID, 'reloaded in place');
      assert.ok(await accountState('second'), '/v1/status has the new account');
      t.diagnostic(`after reload: ${p1.StatusText}`);

      // A bad config: an unknown key.
      writeFileSync(file, JSON.stringify({ ...config, notAKey: true }, null, 2));
      cursor = await m.journalCursor();
      // ExecReload (the agent's reload command) waits for the agent's answer: a refused config fails the reload.
      const refused = await m.exec(['systemctl', 'reload', SERVICE]);
      assert.notEqual(refused.code, 0, describeRun('systemctl reload (bad config)', refused));
      assert.match(refused.stderr, /failed/);
      const journal = await waitUntil(
        '"config reload refused" in the journal',
        async () => {
          const j = await m.journalSince(cursor, SERVICE);
          return /config reload refused/.test(j) ? j : undefined;
        },
        15_000,
      );
      assert.match(journal, /notAKey/);
      assert.match(journal, /reload: the agent refused the config and keeps running the one it had/);
      // The agent logs the refusal, then sends READY=1 through systemd-notify, a child process: until systemd
      // has that message the unit reads 'reloading' (a CI run saw it). Bounded: it is there within milliseconds.
      const p2 = await waitUntil(
        'active again after the refused reload',
        async () => {
          const p = await show(['ActiveState', 'MainPID']);
          return p.ActiveState === 'reloading' ? undefined : p;
        },
        15_000,
      );
      assert.equal(p2.ActiveState, 'active');
      assert.equal(p2.MainPID, p0.MainPID);
      assert.ok(await accountState('second'), 'the running config (with the second account) is kept');
      assert.equal(must('till token', await tillToken()).stdout.trim(), token);
    } finally {
      writeFileSync(file, original);
      const cursor = await m.journalCursor();
      must('systemctl reload (original config)', await m.exec(['systemctl', 'reload', SERVICE]));
      await waitUntil('the original config reloaded', async () => /config reloaded/.test(await m.journalSince(cursor, SERVICE)), 15_000);
    }
    assert.equal(await accountState('second'), undefined);
  });

  describe('set-up on a running agent, on a root with only the package and its Depends', () => {
    const DROP_INS = '/etc/systemd/system/pos-token-agent.service.d';
    let original = '';
    const fileSha = (): string => configFileSha256(readFileSync(m.hostPath(CONFIG), 'utf8'));
    const runningConfig = async (): Promise<{ path: string; sha256: string; generation: number }> =>
      (await agentStatus()).config as { path: string; sha256: string; generation: number };
    /** pos-token-agent-provision --non-interactive from the emulator's values plus `extra` lines, and `args`. */
    const setup = async (extra: string[], args: string[] = []): Promise<RunResult> => {
      writeFileSync(m.hostPath('/root/pos.env'), `${provisionEnv}${extra.join('\n')}\n`, { mode: 0o600 });
      try {
        return await m.exec(['pos-token-agent-provision', '--non-interactive', '--from', '/root/pos.env', ...args], { timeoutMs: 4 * 60_000 });
      } finally {
        rmSync(m.hostPath('/root/pos.env'), { force: true });
      }
    };
    const dropIn = async (name: string, text: string | undefined): Promise<void> => {
      const file = m.hostPath(`${DROP_INS}/${name}`);
      if (text === undefined) rmSync(file, { force: true });
      else {
        mkdirSync(m.hostPath(DROP_INS), { recursive: true });
        writeFileSync(file, text);
      }
      must('daemon-reload', await m.exec(['systemctl', 'daemon-reload']));
    };
    const enqueue = (uuid: string) =>
      ask(m.livePath(SOCKET_PATH), '/v1/outbox', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ account: 'default', path: '/api/v1/receiptsubmissions', key: uuid, body: { receipts: [{ header: { uuid, receiptNumber: uuid } }] } }),
      });

    before(() => {
      original = readFileSync(m.hostPath(CONFIG), 'utf8');
    });
    after(
      async () => {
        // The config as provisioning left it, run by a restarted agent; the token the next tests compare is its.
        writeFileSync(m.hostPath(CONFIG), original);
        await resetStartLimit();
        const cursor = await m.journalCursor();
        must('systemctl restart', await m.exec(['systemctl', 'restart', SERVICE]));
        await waitUntil('the restored token, confirmed by a login when restored by the wall clock', async () => {
          const j = await m.journalSince(cursor, SERVICE);
          const how = /"msg":"restored the stored token".*"measured_by":"([^"]+)"/.exec(j)?.[1];
          if (how === undefined) return /"msg":"login succeeded"/.test(j) || undefined;
          return !how.startsWith('wall clock') || /"msg":"login succeeded"/.test(j) || undefined;
        }, 30_000);
        const tok = await ask(m.livePath(SOCKET_PATH), '/v1/token');
        assert.equal(tok.status, 200, tok.text);
        token = String(tok.json.access_token);
      },
      { timeout: 2 * 60_000 },
    );

    it('takes a new API URL with systemctl reload, checked: the outbox delivers, /v1/status runs the file', { timeout: 5 * 60_000 }, async (t) => {
      const p0 = await show(['MainPID']);
      const no = await enqueue('sys-setup-0');
      assert.equal(no.status, 409, `no apiUrl yet: ${no.text}`);
      const cursor = await m.journalCursor();
      const r = must('set-up with an API URL', await setup([`POS_API_URL=${emulator.url}`]));
      t.diagnostic(r.stdout.trim());
      assert.match(r.stderr, /The agent runs an older \/etc\/pos-token-agent\/config\.json \(generation \d+\); reloading it \.\.\./);
      assert.doesNotMatch(r.stderr, /restarting/);
      assert.match(r.stdout, new RegExp(`API: +${emulator.url.replace(/[.]/g, '\\.')}`));
      assert.match(r.stdout, /Agent: +running; account default is fresh/);
      assert.match(r.stdout, /Doctor: +ok/);
      assert.equal((await show(['MainPID'])).MainPID, p0.MainPID, 'reloaded in place');
      assert.equal((await runningConfig()).sha256, fileSha(), '/v1/status runs the file as set-up left it');
      assert.match(await m.journalSince(cursor, SERVICE), /reload: config generation \d+ taken/);
      const queued = await enqueue('sys-setup-1');
      assert.equal(queued.status, 202, queued.text);
      await waitUntil('the receipt delivered to the API', () => emulator.apiSubmissions().some((x) => x.uuids.includes('sys-setup-1') && x.status === 202), 30_000);
    });

    it('restarts the agent when the reload does not run (the old ExecReload=/bin/kill on a box without procps)', { timeout: 5 * 60_000 }, async () => {
      await dropIn('50-old-reload.conf', '[Service]\nExecReload=\nExecReload=/bin/kill -HUP $MAINPID\n');
      try {
        // The issue as a technician met it: on a minimal Debian the old unit's reload cannot run at all.
        const old = await m.exec(['systemctl', 'reload', SERVICE]);
        assert.notEqual(old.code, 0, describeRun('systemctl reload with /bin/kill', old));
        await resetStartLimit();
        const p0 = await show(['MainPID']);
        const api = emulator.url.replace('127.0.0.1', 'localhost');
        const r = must('set-up with another API URL', await setup([`POS_API_URL=${api}`], ['--skip-doctor']));
        assert.match(r.stderr, /The reload did not take \(systemctl reload failed: exit \d+, the agent still runs generation \d+\); restarting the agent \.\.\./);
        assert.match(r.stdout, /Agent: +running; account default is/);
        const p1 = await show(['MainPID']);
        assert.notEqual(p1.MainPID, p0.MainPID, 'restarted');
        assert.equal((await runningConfig()).sha256, fileSha());
      } finally {
        await dropIn('50-old-reload.conf', undefined);
      }
    });

    it('restarts the agent when it refuses the file on reload (a setting it reads only at start), and the file runs', { timeout: 5 * 60_000 }, async () => {
      // A profile in a folder the running agent does not look in yet: deviceProfileDirs is read at start only.
      mkdirSync(m.hostPath('/etc/pos-token-agent/extra-profiles'), { recursive: true });
      const manual = JSON.parse(readFileSync(m.hostPath('/usr/lib/pos-token-agent/device-profiles/manual.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(m.hostPath('/etc/pos-token-agent/extra-profiles/box-x.json'), JSON.stringify({ ...manual, $schema: undefined, name: 'box-x' }));
      const cfg = JSON.parse(readFileSync(m.hostPath(CONFIG), 'utf8')) as Record<string, unknown>;
      cfg.deviceProfileDirs = ['/usr/lib/pos-token-agent/device-profiles', '/etc/pos-token-agent/device-profiles', '/etc/pos-token-agent/extra-profiles'];
      writeFileSync(m.hostPath(CONFIG), JSON.stringify(cfg, null, 2));
      try {
        await resetStartLimit();
        const p0 = await show(['MainPID']);
        const r = must('set-up with the profile box-x', await setup(['POS_PROFILE=box-x'], ['--skip-doctor']));
        assert.match(r.stderr, /The reload did not take \(the agent refused it:\n {2}- account default: device profile "box-x" not found in /);
        assert.match(r.stderr, /restarting the agent \.\.\./);
        assert.match(r.stdout, /Profile: +box-x/);
        assert.match(r.stdout, /Agent: +running; account default is/);
        assert.notEqual((await show(['MainPID'])).MainPID, p0.MainPID, 'restarted');
        assert.equal((await runningConfig()).sha256, fileSha());
      } finally {
        writeFileSync(m.hostPath(CONFIG), original);
        await resetStartLimit();
        must('restart', await m.exec(['systemctl', 'restart', SERVICE]));
        rmSync(m.hostPath('/etc/pos-token-agent/extra-profiles'), { recursive: true, force: true });
      }
    });

    it('fails, saying what runs, when even a restart does not run the file (a drop-in points the agent elsewhere)', { timeout: 5 * 60_000 }, async () => {
      writeFileSync(m.hostPath('/etc/pos-token-agent/other.json'), original, { mode: 0o640 });
      must('chgrp', await m.exec(['chgrp', 'pos-token-agent', '/etc/pos-token-agent/other.json']));
      await dropIn('50-other-config.conf', '[Service]\nEnvironment=POS_TOKEN_AGENT_CONFIG=/etc/pos-token-agent/other.json\n');
      try {
        await resetStartLimit();
        must('restart', await m.exec(['systemctl', 'restart', SERVICE]));
        const r = await setup([`POS_API_URL=${emulator.url}`], ['--skip-doctor']);
        assert.equal(r.code, 1, describeRun('set-up', r));
        assert.match(
          r.stderr,
          /after a restart the agent still does not run \/etc\/pos-token-agent\/config\.json: it runs \/etc\/pos-token-agent\/other\.json \(sha256 [0-9a-f]{64}, generation 1\); see: systemctl cat pos-token-agent\.service/,
        );
        assert.doesNotMatch(r.stdout, /Agent: +running/);
      } finally {
        await dropIn('50-other-config.conf', undefined);
        rmSync(m.hostPath('/etc/pos-token-agent/other.json'), { force: true });
        await resetStartLimit();
        must('restart', await m.exec(['systemctl', 'restart', SERVICE]));
      }
    });

    it('says that the credential recipe needs D-Bus, and changes nothing, on a box without it', { timeout: 2 * 60_000 }, async () => {
      await dropIn('50-credential.conf', '[Service]\nLoadCredentialEncrypted=pos-token-agent.key:/etc/credstore.encrypted/pos-token-agent.key\n');
      try {
        const before = readFileSync(m.hostPath(CONFIG), 'utf8');
        const r = await setup([`POS_API_URL=${emulator.url}/other`], ['--skip-doctor']);
        assert.equal(r.code, 1, describeRun('set-up', r));
        assert.match(r.stderr, /needs the D-Bus system bus \(\/run\/dbus\/system_bus_socket is missing\): install dbus/);
        assert.equal(readFileSync(m.hostPath(CONFIG), 'utf8'), before);
      } finally {
        await dropIn('50-credential.conf', undefined);
      }
    });
  });

  it('serves the stored token after a poweroff and a fresh boot with the emulator down', { timeout: 5 * 60_000 }, async (t) => {
    assert.equal(must('till token', await tillToken()).stdout.trim(), token);
    await emulator.stop();
    try {
      const down = await m.poweroff();
      const boot = await m.boot();
      t.diagnostic(`poweroff ${Math.round(down)} ms, boot ${Math.round(boot.ms)} ms (${boot.state})`);
      await waitActive('the service started at boot', 30_000);
      const r = must('till token after the boot', await tillToken());
      assert.equal(r.stdout.trim(), token);
      const journal = must('journalctl -b 0', await m.exec(['journalctl', '-q', '-b', '0', '-u', SERVICE, '-o', 'cat', '--no-pager'])).stdout;
      const restored = /"msg":"restored the stored token".*"measured_by":"([^"]+)"/.exec(journal);
      assert.ok(restored, 'the journal of this boot says the stored token was restored');
      t.diagnostic(`token age measured by ${restored[1]} (see the top of this file)`);
      const boots = must('journalctl --list-boots', await m.exec(['journalctl', '--list-boots', '--no-pager'])).stdout.trim().split('\n');
      assert.ok(boots.length >= 2, `the journal keeps both boots:\n${boots.join('\n')}`);
    } finally {
      await emulator.start();
    }
  });

  it('rates 2.0 or better with systemd-analyze security inside, and its units verify clean', { timeout: 2 * 60_000 }, async (t) => {
    const r = must('systemd-analyze security', await m.exec(['systemd-analyze', 'security', '--no-pager', SERVICE]));
    const level = /Overall exposure level for pos-token-agent\.service: (\d+\.\d+) (\S+)/.exec(r.stdout);
    assert.ok(level, r.stdout.slice(-500));
    figures.security_exposure = Number(level[1]);
    t.diagnostic(`systemd-analyze security: ${level[1]} ${level[2]}`);
    assert.ok(Number(level[1]) <= 2.0, `exposure ${level[1]} ${level[2]}`);
    const v = await m.exec(['systemd-analyze', 'verify', '--man=no', SERVICE, SOCKET]);
    assert.equal(v.code, 0, describeRun('systemd-analyze verify', v));
    assert.equal(v.stderr.trim() + v.stdout.trim(), '', 'no warnings from systemd-analyze verify');
  });

  it('dpkg -r stops the agent and keeps config and state; dpkg -P removes them', { timeout: 5 * 60_000 }, async () => {
    must('dpkg -r', await dpkg(['-r', 'pos-token-agent']));
    for (const unit of [SERVICE, SOCKET]) {
      const a = (await m.exec(['systemctl', 'is-active', unit])).stdout.trim();
      assert.ok(a === 'inactive' || a === 'unknown', `${unit} is ${a}`);
    }
    // No pgrep (procps) on the root: the processes of the agent's user, from /proc.
    const procs = await m.sh('for d in /proc/[0-9]*; do [ "$(stat -c %U "$d" 2>/dev/null)" = pos-token-agent ] && echo "${d#/proc/}"; done; true');
    assert.equal(procs.stdout.trim(), '', 'no process of the agent left');
    assert.equal((await m.exec(['sh', '-c', 'test -S /run/pos-token-agent/agent.sock'])).code, 1, 'the socket is gone');
    assert.ok(existsSync(m.hostPath(STATE_DB)), 'state.db kept');
    assert.ok(existsSync(m.hostPath(CONFIG)), 'config kept');
    assert.ok(!existsSync(m.hostPath('/usr/lib/pos-token-agent')), 'the program is gone');
    assert.ok(!existsSync(m.hostPath('/usr/bin/pos-token-agent')));
    const q = await m.exec(['dpkg-query', '-W', '-f', '${Status}', 'pos-token-agent']);
    assert.equal(q.stdout, 'deinstall ok config-files');

    // Installed again over the kept state: the agent serves again at once, with the stored token and no login.
    const before = logins();
    must('dpkg -i (reinstall)', await dpkg(['-i', copyIn(deb)]));
    await waitActive('the reinstalled service', 30_000);
    assert.match(must('till token', await tillToken()).stdout.trim(), JWT);
    assert.equal(logins(), before, 'the stored token, no login');
    must('dpkg -r (again)', await dpkg(['-r', 'pos-token-agent']));

    must('dpkg -P', await dpkg(['-P', 'pos-token-agent']));
    assert.ok(!existsSync(m.hostPath('/etc/pos-token-agent')), '/etc/pos-token-agent removed');
    assert.ok(!existsSync(m.hostPath('/var/lib/pos-token-agent')), '/var/lib/pos-token-agent removed');
    const gone = await m.exec(['dpkg-query', '-W', '-f', '${Status}', 'pos-token-agent']);
    assert.notEqual(gone.stdout, 'install ok installed');
  });

  it('upgrades from the previous version keeping credentials, token and config, and restarts the agent', { timeout: 30 * 60_000 }, async (t) => {
    const prev = await previous;
    t.diagnostic(`previous version ${prev.version} (${prev.commit.slice(0, 12)}): ${prev.deb}`);
    assert.notEqual(prev.version, VERSION);
    must(`dpkg -i ${prev.version}`, await dpkg(['-i', copyIn(prev.deb)]));
    must('the till is still in pos-token-clients', await m.sh('id -nG till | grep -qw pos-token-clients'));
    // The old version's provision.sh predates the package and looks for node on PATH only; its POS_NODE
    // points it at the runtime the package brings.
    must(`provision ${prev.version}`, await provision({ POS_NODE: '/usr/lib/pos-token-agent/node/bin/node' }));
    await waitActive(`the ${prev.version} service`, 30_000);
    const old = await agentStatus();
    assert.equal(old.version, prev.version);
    // The old agent serves provisioning's token, which carries the container's boot_id, not the kernel's that the
    // sandboxed agent reads (top of this file), so this version would take it for another boot's and confirm it
    // with a login. A till's forced refresh makes the old agent store a token of its own first, as an agent that
    // has been running a while has (on a real box provisioning's would do, having the same boot_id).
    const provisioned = must('till token', await tillToken()).stdout.trim();
    const own = await forceRefresh(m.livePath(SOCKET_PATH), provisioned);
    assert.equal(own.status, 200, own.text);
    const oldToken = must('till token', await tillToken()).stdout.trim();
    assert.match(oldToken, JWT);
    const config = readFileSync(m.hostPath(CONFIG), 'utf8');
    const p0 = await show(['MainPID', 'ExecMainStartTimestampMonotonic']);
    const before = logins();

    const r = must(`dpkg -i ${VERSION} (upgrade)`, await dpkg(['-i', copyIn(deb)]));
    figures.upgrade_ms = Math.round(r.ms);
    const p1 = await waitActive('the upgraded service', 30_000, p0.MainPID);
    const started = Number((await show(['ExecMainStartTimestampMonotonic'])).ExecMainStartTimestampMonotonic);
    assert.ok(started > Number(p0.ExecMainStartTimestampMonotonic), 'the agent was restarted');
    assert.equal((await agentStatus()).version, VERSION, 'the new program runs');
    const q = must('dpkg-query', await m.exec(['dpkg-query', '-W', '-f', '${Version}', 'pos-token-agent']));
    assert.equal(q.stdout, VERSION);
    assert.equal(readFileSync(m.hostPath(CONFIG), 'utf8'), config, 'config unchanged');
    assert.equal(must('till token', await tillToken()).stdout.trim(), oldToken, 'the stored token is served');
    assert.equal(logins(), before, 'no login across the upgrade');
    // The stored credentials still work: a till reporting the token as rejected makes the agent log in with them.
    const refreshed = await forceRefresh(m.livePath(SOCKET_PATH), oldToken);
    assert.equal(refreshed.status, 200, refreshed.text);
    assert.notEqual(refreshed.json.access_token, oldToken);
    assert.equal(logins(), before + 1);
    t.diagnostic(`upgrade ${prev.version} -> ${VERSION} in ${Math.round(r.ms)} ms; main pid ${p0.MainPID} -> ${p1.MainPID}`);

    // A config this version refuses (an option an account's authority does not use, which 0.2 ignored): the
    // package's postinst checks it before restarting, so the running agent keeps serving and the output says why.
    const bad = JSON.parse(config) as { accounts: Record<string, Record<string, unknown>> };
    const first = Object.keys(bad.accounts)[0]!;
    bad.accounts[first]!.loginsPerMinute = 5;
    writeFileSync(m.hostPath(CONFIG), JSON.stringify(bad, null, 2));
    try {
      const re = must(`dpkg -i ${VERSION} (with a config it refuses)`, await dpkg(['-i', copyIn(deb)]));
      assert.match(re.stdout + re.stderr, /the running agent was not restarted: this version refuses \/etc\/pos-token-agent\/config\.json/);
      assert.match(re.stdout + re.stderr, new RegExp(`accounts\\.${first}\\.loginsPerMinute: not used by authority`));
      assert.equal((await show(['MainPID'])).MainPID, p1.MainPID, 'the agent was not restarted');
      assert.match(must('till token', await tillToken()).stdout.trim(), JWT, 'and still serves');
    } finally {
      writeFileSync(m.hostPath(CONFIG), config);
    }
  });

  it('leaves no SIGSYS, no "Operation not permitted" from the agent and no unit warning in the journal', { timeout: 2 * 60_000 }, async (t) => {
    const r = must('journalctl -o json', await m.exec(['journalctl', '-o', 'json', '--no-pager'], { timeoutMs: 60_000 }));
    interface Entry {
      MESSAGE?: string | number[];
      PRIORITY?: string;
      _PID?: string;
      UNIT?: string;
      _SYSTEMD_UNIT?: string;
    }
    const entries = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Entry)
      .map((e) => ({ ...e, text: typeof e.MESSAGE === 'string' ? e.MESSAGE : Buffer.from(e.MESSAGE ?? []).toString('utf8') }));
    const sigsys = entries.filter((e) => /SIGSYS|status=31\/SYS/.test(e.text));
    assert.deepEqual(sigsys.map((e) => e.text), [], 'no SIGSYS');
    const agent = entries.filter((e) => e._SYSTEMD_UNIT === SERVICE);
    const eperm = agent.filter((e) => /Operation not permitted|EPERM/.test(e.text));
    assert.deepEqual(eperm.map((e) => e.text), [], 'no "Operation not permitted" from the agent');
    // What the tests above provoke: the KILL, the watchdog's SIGABRT, and their restarts.
    const provoked = [
      /Main process exited, code=killed, status=9\/KILL/,
      /Main process exited, code=(dumped|killed), status=6\/ABRT/,
      /Failed with result '(signal|watchdog|core-dump)'/,
      /Watchdog timeout \(limit 6s\)!/,
      /Killing process \d+ \(\S+\) with signal SIGABRT/,
      // The refused reloads (the reload test, and the set-up tests' old ExecReload=/bin/kill on a root without it).
      /Reload failed for /,
      /Control process exited, code=exited, status=(1\/FAILURE|203\/EXEC)/,
    ];
    const fromSystemd = entries.filter(
      (e) => e._PID === '1' && ((e.UNIT ?? '').startsWith('pos-token-agent') || e.text.includes('pos-token-agent')),
    );
    const warnings = fromSystemd.filter(
      (e) => (Number(e.PRIORITY ?? 6) <= 4 || /already exists but the mode is different/.test(e.text)) && !provoked.some((x) => x.test(e.text)),
    );
    assert.deepEqual(warnings.map((e) => `${e.UNIT ?? ''}: ${e.text}`), [], 'no unit warning from systemd');
    // The agent's own warnings and errors (JSON lines), less the refused reload the reload test asked for.
    const agentProblems = agent
      .map((e) => {
        try {
          return JSON.parse(e.text) as { level?: string; msg?: string };
        } catch {
          return undefined;
        }
      })
      .filter((l): l is { level: string; msg: string; account?: string } => !!l && (l.level === 'error' || l.level === 'fatal'))
      // What the reload test provokes: the refused bad config, and the unprovisioned account it adds.
      .filter((l) => !/config reload refused/.test(l.msg) && l.account !== 'second');
    assert.deepEqual(agentProblems, [], 'no error from the agent');
    const agentWarnings = agent.filter((e) => /"level":"warn"/.test(e.text)).map((e) => e.text);
    t.diagnostic(`${entries.length} journal entries; ${agent.length} from the service; agent warnings: ${agentWarnings.length ? agentWarnings.join(' | ') : 'none'}`);
  });
});

/** RSS, PSS, private (clean + dirty), anonymous and file-backed resident memory, in MiB, from /proc/PID/smaps_rollup. */
function smapsFigures(rollup: string): Record<string, number> {
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(rollup)?.[1] ?? NaN);
  const mib = (x: number): number => round(x / 1024, 1);
  return {
    rss: mib(kib('Rss')),
    pss: mib(kib('Pss')),
    private: mib(kib('Private_Clean') + kib('Private_Dirty')),
    anonymous: mib(kib('Anonymous')),
    file_backed: mib(kib('Rss') - kib('Anonymous')),
  };
}

/**
 * The baseline on the same runtime in the same booted system: a bare node, idle for 3 s, its smaps_rollup; and the
 * median of 10 runs of `node -e ''`, timed inside the container (date +%s%N around each).
 */
async function bareNode(m: Machine): Promise<{ memory: Record<string, number>; startMedianMs: number }> {
  const node = `/usr/lib/${NAME}/node/bin/node`;
  const idle = `setTimeout(() => process.stdout.write(require('fs').readFileSync('/proc/self/smaps_rollup', 'utf8')), 3000)`;
  const memory = smapsFigures(must('bare node', await m.exec([node, '-e', idle])).stdout);
  const loop = `for i in 1 2 3 4 5 6 7 8 9 10; do a=$(date +%s%N); ${node} -e ''; b=$(date +%s%N); echo $(( (b - a) / 1000 )); done`;
  const times = must('node -e', await m.exec(['sh', '-c', loop])).stdout.trim().split('\n').map((us) => Number(us) / 1000);
  return { memory, startMedianMs: round(median(times), 1) };
}

