/**
 * The arm64 package on this x86-64 machine under qemu user emulation: its own Node.js runtime and its
 * better-sqlite3 build, run with `qemu-aarch64-static -L /usr/aarch64-linux-gnu` (Debian's libc6-arm64-cross
 * sysroot). The CLI's --version, provisioning with a real check login, and `run` serving a token on a socket,
 * all against the emulator in this test process. Slow by nature (every instruction is translated): the
 * timeouts are generous on purpose, and the times are figures, not targets.
 *
 * The package is release/pos-token-agent_<v>_arm64.deb, else release/pos-token-agent-<v>-linux-arm64.tar.gz
 * (POS_TOKEN_AGENT_ARM64 may name either).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEmulator, DEMO_DEVICE, type Emulator } from '../../src/emulator/index.js';
import { ask } from '../support/harness.js';
import { debFile, describe as describeRun, has, hostEnv, must, recordFigures, run, tarballFile, VERSION, waitUntil, type RunResult } from './support.js';

const SYSROOT = '/usr/aarch64-linux-gnu';
const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/;

function skipReason(): string | false {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `needs Linux on x86-64 (this is ${process.platform}/${process.arch})`;
  if (!has('qemu-aarch64-static')) return 'qemu-aarch64-static is not installed (apt-get install qemu-user-static)';
  if (!existsSync(join(SYSROOT, 'lib/ld-linux-aarch64.so.1'))) return `no arm64 sysroot in ${SYSROOT} (apt-get install libc6-arm64-cross libstdc++6-arm64-cross)`;
  if (!has('dpkg-deb')) return 'dpkg-deb is not installed';
  return false;
}

/** The arm64 package to test: the .deb, else the tarball. */
function arm64Package(): string | undefined {
  const candidates = [process.env.POS_TOKEN_AGENT_ARM64, debFile('arm64'), tarballFile('arm64')].filter((p): p is string => !!p);
  return candidates.map((p) => resolve(p)).find((p) => existsSync(p));
}

/** e_machine of an ELF file (0xb7: AArch64). */
function elfMachine(file: string): number {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(20);
    readSync(fd, b, 0, 20, 0);
    assert.equal(b.subarray(0, 4).toString('latin1'), '\x7fELF', `${file} is not an ELF file`);
    return b.readUInt16LE(18);
  } finally {
    closeSync(fd);
  }
}

/** The program directory (the one holding node/bin/node and dist/cli/main.js) under dir, searched 4 levels deep. */
function findProgram(dir: string, depth = 4): string | undefined {
  if (existsSync(join(dir, 'node/bin/node')) && existsSync(join(dir, 'dist/cli/main.js'))) return dir;
  if (depth === 0) return undefined;
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (n !== 'node_modules' && statSync(p).isDirectory()) {
      const found = findProgram(p, depth - 1);
      if (found) return found;
    }
  }
  return undefined;
}

const round = (x: number): number => Math.round(x);

describe('the arm64 package under qemu user emulation', { skip: skipReason() }, () => {
  const figures: Record<string, unknown> = {};
  let work = '';
  let program = '';
  let emulator: Emulator;
  let agent: ChildProcess | undefined;
  let agentOutput = '';
  let agentExit: Promise<number | null> | undefined;
  let socket = '';
  let configPath = '';

  /** The bundled node of the package under qemu, with a clean environment. */
  const qemuNode = (args: string[], options: { stdin?: string; timeoutMs?: number } = {}): Promise<RunResult> =>
    run('qemu-aarch64-static', ['-L', SYSROOT, join(program, 'node/bin/node'), ...args], {
      timeoutMs: options.timeoutMs ?? 5 * 60_000,
      env: hostEnv(),
      ...(options.stdin !== undefined ? { stdin: options.stdin } : {}),
    });
  const cli = (args: string[], options: { stdin?: string; timeoutMs?: number } = {}): Promise<RunResult> =>
    qemuNode([join(program, 'dist/cli/main.js'), ...args], options);

  before(
    async () => {
      const pkg = arm64Package();
      if (!pkg) throw new Error(`no arm64 package: neither ${debFile('arm64')} nor ${tarballFile('arm64')}; run npm run package first`);
      figures.package = pkg.slice(pkg.lastIndexOf('/') + 1);
      work = mkdtempSync(join(tmpdir(), 'pta-arm64-'));
      const tree = join(work, 'tree');
      mkdirSync(tree);
      if (pkg.endsWith('.deb')) must('dpkg-deb -x', await run('dpkg-deb', ['-x', pkg, tree], { timeoutMs: 5 * 60_000 }));
      else must('tar -x', await run('tar', ['-xzf', pkg, '-C', tree], { timeoutMs: 5 * 60_000 }));
      const found = findProgram(tree);
      if (!found) throw new Error(`${pkg} holds no node/bin/node with dist/cli/main.js`);
      program = found;
      emulator = createEmulator({ devices: [DEMO_DEVICE], rateLimitPerMinute: 0, host: '127.0.0.1', port: 0 });
      await emulator.start();
      socket = join(work, 'run', 'agent.sock');
      configPath = join(work, 'config.json');
      mkdirSync(join(work, 'run'), { mode: 0o750 });
      mkdirSync(join(work, 'state'), { mode: 0o700 });
      writeFileSync(
        configPath,
        JSON.stringify({
          socket,
          stateDir: join(work, 'state'),
          logLevel: 'info',
          accounts: {
            default: {
              authority: 'eta-ereceipt',
              identityUrl: emulator.url,
              identity: { posserial: DEMO_DEVICE.posserial, pososversion: DEMO_DEVICE.pososversion, posmodelframework: DEMO_DEVICE.posmodelframework },
            },
          },
        }),
      );
    },
    { timeout: 10 * 60_000 },
  );

  after(
    async () => {
      if (agent && agent.exitCode === null && agent.signalCode === null) {
        agent.kill('SIGKILL');
        await agentExit;
      }
      await emulator?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
      if (Object.keys(figures).length) recordFigures('arm64', figures);
    },
    { timeout: 60_000 },
  );

  it('carries an AArch64 runtime that reports arm64 under qemu', { timeout: 10 * 60_000 }, async (t) => {
    assert.equal(elfMachine(join(program, 'node/bin/node')).toString(16), 'b7', 'node/bin/node is an AArch64 binary');
    const addon = join(program, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
    assert.ok(existsSync(addon), `${addon} exists`);
    assert.equal(elfMachine(addon).toString(16), 'b7', 'better-sqlite3 is built for AArch64');
    const r = must('node -p process.arch', await qemuNode(['-p', '[process.arch, process.version, process.versions.modules].join(" ")']));
    const [arch, version, abi] = r.stdout.trim().split(' ');
    assert.equal(arch, 'arm64');
    // The addon's entry point names the Node ABI its headers were (node_register_module_v<N>): it must be the
    // bundled runtime's, or the runtime refuses it (or, for a cross build, fails on a missing V8 symbol).
    const built = /node_register_module_v(\d+)/.exec(readFileSync(addon).toString('latin1'))?.[1];
    assert.equal(built, abi, `better-sqlite3 was built for NODE_MODULE_VERSION ${built}, the bundled ${version} is ${abi}`);
    figures.process_arch = arch;
    figures.node = version;
    const v = must('pos-token-agent --version', await cli(['--version']));
    assert.match(v.stdout, new RegExp(VERSION.replaceAll('.', '\\.')));
    figures.version_ms = round(v.ms);
    t.diagnostic(`process.arch ${arch}, ${version}; --version took ${round(v.ms)} ms under qemu (node -p: ${round(r.ms)} ms)`);
  });

  it('provisions with a check login (better-sqlite3 under qemu) and serves a token on the socket', { timeout: 15 * 60_000 }, async (t) => {
    const before = emulator.stats().issued;
    const credentials = { clientId: DEMO_DEVICE.clientId, clientSecret: DEMO_DEVICE.clientSecrets[0], presharedKey: DEMO_DEVICE.presharedKey };
    const p = await cli(['provision', '--config', configPath, '--account', 'default', '--stdin'], { stdin: JSON.stringify(credentials) });
    assert.equal(p.code, 0, describeRun('provision --stdin', p));
    assert.ok(emulator.stats().issued > before, 'the check login reached the emulator');
    figures.provision_ms = round(p.ms);
    assert.ok(existsSync(join(work, 'state', 'state.db')), 'the state database was made');

    const t0 = performance.now();
    const child = spawn('qemu-aarch64-static', ['-L', SYSROOT, join(program, 'node/bin/node'), join(program, 'dist/cli/main.js'), 'run', '--config', configPath], {
      env: hostEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    agent = child;
    agentExit = new Promise((r) => child.once('exit', (code) => r(code)));
    child.stdout!.on('data', (d: Buffer) => (agentOutput += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (agentOutput += d.toString()));
    await waitUntil(
      'the arm64 agent answering on its socket',
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the agent exited (${child.exitCode ?? child.signalCode}): ${agentOutput}`);
        return (await ask(socket, '/v1/status')).status === 200;
      },
      5 * 60_000,
      250,
    );
    figures.start_to_answer_ms = round(performance.now() - t0);
    const status = await ask(socket, '/v1/status');
    assert.equal(status.json.version, VERSION);
    const t1 = performance.now();
    const tok = await ask(socket, '/v1/token');
    figures.first_token_ms = round(performance.now() - t1);
    assert.equal(tok.status, 200, tok.text);
    assert.match(String(tok.json.access_token), JWT);
    assert.equal(tok.json.account, 'default');
    const warm: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t2 = performance.now();
      assert.equal((await ask(socket, '/v1/token')).status, 200);
      warm.push(performance.now() - t2);
    }
    figures.token_request_median_ms = round([...warm].sort((a, b) => a - b)[5]!);
    t.diagnostic(
      `under qemu: provision ${round(p.ms)} ms, run to first answer ${String(figures.start_to_answer_ms)} ms, ` +
        `first token ${String(figures.first_token_ms)} ms, then ${String(figures.token_request_median_ms)} ms a request (median of 10)`,
    );

    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([agentExit, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 60_000)))]);
    clearTimeout(timer);
    assert.equal(code, 0, `the agent stops cleanly on SIGTERM: ${agentOutput.slice(-2000)}`);
    assert.doesNotMatch(agentOutput, /"level":"(error|fatal)"/);
  });
});
