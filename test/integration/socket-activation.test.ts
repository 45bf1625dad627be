/**
 * The real CLI `run` as systemd starts it: on a socket passed by systemd-socket-activate
 * (LISTEN_FDS), and reporting to a stand-in $NOTIFY_SOCKET (READY, STATUS, WATCHDOG,
 * RELOADING, STOPPING) through the systemd-notify binary.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { lstatSync, mkdirSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ask, CLI, DEMO_CREDENTIALS, fixture, waitFor, type Fixture } from '../support/harness.js';
import { startNotifyReceiver, type NotifyMessage, type NotifyReceiver } from '../support/notify.js';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const missing = ['systemd-socket-activate', 'systemd-notify', 'python3'].filter((c) => !has(c));
const skip = missing.length > 0 && `needs ${missing.join(', ')}`;

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function start(cmd: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function stop(p: Proc | undefined): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGKILL');
  await p.exited;
}

const isSocket = (path: string): boolean => {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
};

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The environment of a service: ours minus anything systemd-ish, plus what the test sets. */
function serviceEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES']) delete env[k];
  return { ...env, ...extra };
}

describe('socket activation: the agent on the socket systemd holds', { skip }, () => {
  let f: Fixture;
  let notify: NotifyReceiver;
  let activator: Proc | undefined;

  before(async () => {
    f = await fixture();
    const p = await f.provision(DEMO_CREDENTIALS, []);
    assert.equal(p.code, 0, p.stderr);
    mkdirSync(dirname(f.socket), { recursive: true });
    notify = await startNotifyReceiver(join(f.dir, 'notify.sock'));
  });
  after(async () => {
    await stop(activator);
    await notify?.close();
    await f?.cleanup();
  });

  it('holds a client that connects before the agent runs, then answers it through the inherited socket', async () => {
    activator = start(
      'systemd-socket-activate',
      [
        '--listen', f.socket,
        '-E', `NOTIFY_SOCKET=${notify.socket}`,
        '-E', 'WATCHDOG_USEC=400000',
        '-E', `PATH=${process.env.PATH}`,
        process.execPath, CLI, 'run', '--config', f.configPath,
      ],
      serviceEnv({}),
    );
    await waitFor('the socket systemd-socket-activate listens on', () => isSocket(f.socket) || undefined);
    assert.equal(notify.messages.length, 0, 'no agent yet: it starts on the first connection');
    // This connection is what starts the agent; the kernel holds it until the agent accepts.
    const health = await ask(f.socket, '/v1/health');
    assert.equal(health.status, 200, health.text);
    assert.deepEqual(health.json, { status: 'ok' });
    const token = await ask(f.socket, '/v1/token');
    assert.equal(token.status, 200, token.text);
    assert.equal(token.json.account, 'default');
    assert.match(activator.output(), /"msg":"listening".*"from":"systemd"/);
    assert.equal(f.emulator.stats().issued, 1, 'the token provisioning stored was restored, no new login');
  });

  it('reports READY=1 with a STATUS, then WATCHDOG=1 every half WATCHDOG_USEC', async () => {
    const ready = await notify.waitFor('READY=1', (m) => m.fields.READY === '1');
    assert.match(ready.fields.STATUS ?? '', /^serving: default fresh, expires in (59|60) min$/);
    await waitFor('five watchdog pings', () => notify.messages.filter((m) => m.fields.WATCHDOG === '1').length >= 5 || undefined, 10_000);
    const pings = notify.messages.filter((m) => m.fields.WATCHDOG === '1').map((m) => m.t);
    const gaps = pings.slice(1).map((t, i) => t - pings[i]!);
    const typical = median(gaps);
    assert.ok(typical > 140 && typical < 320, `pings about every 200 ms, got ${gaps.map(Math.round).join(', ')}`);
    // Each message is followed by its barrier; the newest one's may still be on its way (a race seen under load),
    // so the count of messages so far is compared once their barriers had time to come.
    const sent = notify.messages.length;
    await waitFor('a barrier after each message', () => notify.barriers >= sent || undefined, 5_000);
    for (const m of notify.messages) assert.ok(!m.data.includes('eyJ'), 'no token in a notification');
  });

  it('sends STOPPING=1 on SIGTERM, exits 0 and leaves the socket to systemd', async () => {
    activator!.child.kill('SIGTERM');
    await notify.waitFor('STOPPING=1', (m) => m.fields.STOPPING === '1');
    assert.equal(await activator!.exited, 0, activator!.output());
    assert.ok(isSocket(f.socket), 'the agent did not unlink the path systemd owns');
    const stopping = notify.messages.findIndex((m) => m.fields.STOPPING === '1');
    const readyAt = notify.messages.findIndex((m) => m.fields.READY === '1');
    assert.ok(readyAt < stopping);
  });
});

describe('socket activation: a socket that is not a Unix stream socket', { skip }, () => {
  it('is refused: the agent never serves over TCP', async () => {
    const f = await fixture();
    let activator: Proc | undefined;
    try {
      const port = await new Promise<number>((resolve) => {
        const probe = createServer().listen(0, '127.0.0.1', () => {
          const { port } = probe.address() as AddressInfo;
          probe.close(() => resolve(port));
        });
      });
      activator = start('systemd-socket-activate', ['--listen', `127.0.0.1:${port}`, process.execPath, CLI, 'run', '--config', f.configPath], serviceEnv({}));
      await waitFor('the TCP listener', () => /Listening on/.test(activator!.output()) || undefined);
      const client = connect(port, '127.0.0.1');
      client.on('error', () => {});
      assert.equal(await activator.exited, 1, activator.output());
      client.destroy();
      assert.match(activator.output(), /not a Unix stream socket/);
      assert.ok(!isSocket(f.socket), 'nor did it bind its own');
    } finally {
      await stop(activator);
      await f.cleanup();
    }
  });
});

describe('run without socket activation', { skip }, () => {
  let f: Fixture;
  let notify: NotifyReceiver;
  let agent: Proc | undefined;

  before(async () => {
    f = await fixture();
    const p = await f.provision(DEMO_CREDENTIALS, []);
    assert.equal(p.code, 0, p.stderr);
    notify = await startNotifyReceiver(join(f.dir, 'notify.sock'));
  });
  after(async () => {
    await stop(agent);
    await notify?.close();
    await f?.cleanup();
  });

  it('binds its own socket and says READY=1 only once it answers', async () => {
    // WATCHDOG_PID names another process: the watchdog is not ours to feed.
    agent = start(process.execPath, [CLI, 'run', '--config', f.configPath], serviceEnv({ NOTIFY_SOCKET: notify.socket, WATCHDOG_USEC: '400000', WATCHDOG_PID: '1' }));
    const ready: NotifyMessage = await notify.waitFor('READY=1', (m) => m.fields.READY === '1');
    assert.ok(ready);
    // READY came after the bind: the socket answers right away.
    const health = await ask(f.socket, '/v1/health');
    assert.equal(health.status, 200);
    assert.equal(lstatSync(f.socket).mode & 0o777, 0o660);
    assert.match(agent.output(), /"msg":"listening","socket":"[^"]+agent\.sock"/);
  });

  it('wraps a SIGHUP reload in RELOADING=1 / READY=1, never feeds a watchdog that is not its own, and stops with STOPPING=1', async () => {
    const readyCount = (): number => notify.messages.filter((m) => m.fields.READY === '1').length;
    assert.equal(readyCount(), 1);
    agent!.child.kill('SIGHUP');
    const reloadingMsg = await notify.waitFor('RELOADING=1', (m) => m.fields.RELOADING === '1');
    assert.equal(reloadingMsg.fields.STATUS, 'reloading the config');
    await waitFor('READY=1 after the reload', () => readyCount() === 2 || undefined);
    const reloading = notify.messages.findIndex((m) => m.fields.RELOADING === '1');
    const lastReady = notify.messages.map((m) => m.fields.READY === '1').lastIndexOf(true);
    assert.ok(reloading < lastReady, JSON.stringify(notify.messages.map((m) => m.data)));
    agent!.child.kill('SIGTERM');
    const stoppingMsg = await notify.waitFor('STOPPING=1', (m) => m.fields.STOPPING === '1');
    assert.equal(stoppingMsg.fields.STATUS, 'stopping (SIGTERM)');
    assert.equal(await agent!.exited, 0, agent!.output());
    assert.equal(notify.messages.filter((m) => m.fields.WATCHDOG === '1').length, 0, 'WATCHDOG_PID named another process');
  });

  it('without NOTIFY_SOCKET runs no systemd-notify at all', async () => {
    const plain = start(process.execPath, [CLI, 'run', '--config', f.configPath], serviceEnv({ WATCHDOG_USEC: '400000' }));
    try {
      await waitFor('the socket', async () => (await ask(f.socket, '/v1/health')).status === 200 || undefined);
      plain.child.kill('SIGTERM');
      assert.equal(await plain.exited, 0);
      assert.doesNotMatch(plain.output(), /systemd-notify/);
    } finally {
      await stop(plain);
    }
  });
});
