/**
 * The CLI as a shell user meets it, the same for every command: output into a pipe whose reader stopped early
 * (`status | head -2`) ends quietly with the command's own exit status; an account that is not there is a usage
 * error (exit 2) naming the accounts there are, whether the config or the agent said so; a misspelled option
 * gets a suggestion. The real CLI (dist/) against a real agent whose API never answers (entries stay queued).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createAgentClient } from '../../src/api/index.js';
import { CLI, fixture, runCli, type CliResult, type Fixture } from '../support/harness.js';

/** A loopback port nothing listens on: one the system gave, then closed. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface CutResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** What the other stream carried. */
  other: string;
  /** Bytes read from the cut stream before it was closed. */
  read: number;
}

/**
 * Runs the CLI with `stream` a pipe whose reading end this process closes: at once (before the CLI can have
 * written anything: node takes far longer to start than this takes to close it), or after the first bytes
 * arrived (`head -c1`). The latter makes the CLI's next write fail only when it writes in many pieces (`outbox
 * show`'s lines) more than the pipe holds and this process reads in one go: a single large write (`--json`) may be
 * read whole before the close.
 */
function runCut(args: string[], stream: 'stdout' | 'stderr', when: 'at-once' | 'after-first-bytes'): Promise<CutResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const cut = child[stream];
    const kept = stream === 'stdout' ? child.stderr : child.stdout;
    let other = '';
    let read = 0;
    kept.on('data', (d: Buffer) => (other += d.toString()));
    if (when === 'at-once') cut.destroy();
    else {
      cut.once('data', (d: Buffer) => {
        read = d.length;
        cut.destroy();
      });
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, other, read });
    });
  });
}

/** A shell pipeline with pipefail: its status is the CLI's when head succeeds. */
function shell(script: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `set -o pipefail; ${script}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

describe('cli: consistent across commands', () => {
  let f: Fixture;
  let cfg: string[];
  let bigId: string;
  before(async () => {
    f = await fixture();
    f.writeConfig({ apiUrl: `http://127.0.0.1:${await deadPort()}` });
    const p = await f.provision(undefined, []);
    assert.equal(p.code, 0, p.stderr);
    f.agent.start();
    await f.agent.ready();
    cfg = ['--config', f.configPath];
    // An entry whose `show` is far larger than a pipe's buffer (64 KiB on Linux): 2000 lines of receipt.
    const lines = Array.from({ length: 2000 }, (_, i) => ({ line: i, item: `item ${i}`, price: 1.25 }));
    const r = await createAgentClient({ socket: f.socket }).enqueue({ path: '/api/v1/receipts', body: { lines } });
    assert.ok(r.ok && r.created, JSON.stringify(r));
    bigId = r.enqueued.id;
  });
  after(() => f.cleanup());

  describe('output into a pipe closed early: quiet, with the command\'s own exit status', () => {
    it('status, outbox show, token --json and --help with stdout closed: no stack trace, exit as without the pipe', async () => {
      const cases: Array<[string[], 'at-once' | 'after-first-bytes', number]> = [
        [['status', ...cfg], 'at-once', 0],
        [['status', '--json', ...cfg], 'at-once', 0],
        [['outbox', 'show', bigId, ...cfg], 'after-first-bytes', 0],
        [['outbox', 'show', bigId, '--json', ...cfg], 'at-once', 0],
        [['token', '--json', ...cfg], 'at-once', 0],
        [['token', ...cfg], 'at-once', 0],
        [['--help'], 'at-once', 0],
        [['token', '--help'], 'at-once', 0],
        [['setup', '--help'], 'at-once', 0],
        [['token', '--min-ttl', '5000', '--json', ...cfg], 'at-once', 1],
      ];
      for (const [args, when, code] of cases) {
        const r = await runCut(args, 'stdout', when);
        const what = `${args.join(' ')} (${when})`;
        assert.equal(r.signal, null, what);
        assert.doesNotMatch(r.other, /EPIPE|Error:|    at /, what);
        assert.equal(r.code, code, `${what}: ${r.other}`);
        if (when === 'after-first-bytes') assert.ok(r.read > 0, what);
      }
    });

    it('with stderr closed, a failing command still exits 1 or 2 as it would, not with a crash', async () => {
      const cases: Array<[string[], number]> = [
        [['token', '--account', 'nope', ...cfg], 2],
        [['status', '--jsn', ...cfg], 2],
        [['outbox', 'show', '0b5c3a52-4f0e-4d8e-9a57-2a1f7c1d9e01', ...cfg], 1],
        [['nosuchcommand'], 2],
        [[], 2],
      ];
      for (const [args, code] of cases) {
        const r = await runCut(args, 'stderr', 'at-once');
        assert.equal(r.code, code, `${args.join(' ')}: ${r.other}`);
        assert.equal(r.other, '', args.join(' '));
      }
    });

    it('in a real shell pipeline with head: the lines head asked for, nothing on stderr, the CLI\'s status (pipefail)', async () => {
      const cli = `${quote(process.execPath)} ${quote(CLI)}`;
      const config = quote(f.configPath);
      const show = await shell(`${cli} outbox show ${bigId} --config ${config} | head -1`);
      assert.equal(show.stdout, `id:            ${bigId}\n`);
      assert.equal(show.stderr, '');
      assert.equal(show.code, 0);
      const status = await shell(`${cli} status --config ${config} | head -2`);
      assert.match(status.stdout, /^pos-token-agent \S+, up \d+ s\n\n$/);
      assert.equal(status.stderr, '');
      assert.equal(status.code, 0);
      const token = await shell(`${cli} token --json --config ${config} | head -c1`);
      assert.equal(token.stdout, '{');
      assert.equal(token.stderr, '');
      assert.equal(token.code, 0);
    });
  });

  describe('an account that is not there: exit 2, naming the accounts there are', () => {
    // Each command that takes --account, and who decides: the config (read by the command) or the agent (404).
    // `outbox list --account` joins this table once the agent answers 404 unknown_account there too.
    const table: Array<{ args: string[]; by: 'config' | 'agent'; stdin?: string }> = [
      { args: ['token', '--account', 'nope'], by: 'agent' },
      { args: ['token', '--account', 'nope', '--json'], by: 'agent' },
      { args: ['identity', '--account', 'nope'], by: 'config' },
      { args: ['identity', '--account', 'nope', '--json'], by: 'config' },
      { args: ['identity', '--account', 'nope', '--profile', 'generic-x86'], by: 'config' },
      { args: ['provision', '--account', 'nope', '--stdin'], by: 'config', stdin: '{}' },
    ];
    for (const { args, by, stdin } of table) {
      it(`${args.join(' ')}: exit 2 (${by})`, async () => {
        const r = await runCli([...args, ...cfg], stdin !== undefined ? { stdin } : {});
        const where = by === 'agent' ? 'the agent' : `the config ${f.configPath}`;
        assert.equal(r.code, 2, r.stderr);
        assert.equal(r.stderr, `pos-token-agent: unknown account nope; ${where} has: default; see pos-token-agent status\n`);
        if (args.includes('--json') && by === 'agent') assert.equal(JSON.parse(r.stdout).error, 'unknown_account');
        else assert.equal(r.stdout, '');
      });
    }

    it('a near miss gets a suggestion, from the config or the agent', async () => {
      const agent = await runCli(['token', '--account', 'defualt', ...cfg]);
      assert.equal(agent.code, 2);
      assert.equal(agent.stderr, 'pos-token-agent: unknown account defualt (did you mean default?); the agent has: default; see pos-token-agent status\n');
      const config = await runCli(['identity', '--account', 'Default', ...cfg]);
      assert.equal(config.code, 2);
      assert.equal(
        config.stderr,
        `pos-token-agent: unknown account Default (did you mean default?); the config ${f.configPath} has: default; see pos-token-agent status\n`,
      );
    });
  });

  describe('a misspelled option: exit 2 with the option meant', () => {
    const table: Array<[string[], string]> = [
      [['token', '--acount', 'x'], '--acount (did you mean --account?)'],
      [['token', '--min_ttl', '5'], '--min_ttl (did you mean --min-ttl?)'],
      [['status', '--jsn'], '--jsn (did you mean --json?)'],
      [['status', '--Json'], '--Json (did you mean --json?)'],
      [['outbox', 'list', '--stat', 'queued'], '--stat (did you mean --state?)'],
      [['identity', '--detetc'], '--detetc (did you mean --detect?)'],
      [['provision', '--no-verfy'], '--no-verfy (did you mean --no-verify?)'],
      [['doctor', '--nologin'], '--nologin (did you mean --no-login?)'],
      [['setup', '--identiy-url', 'https://x.example'], '--identiy-url (did you mean --identity-url?)'],
      [['setup', '--non-interactiv'], '--non-interactiv (did you mean --non-interactive?)'],
      [['setup', '--acount=shop'], '--acount (did you mean --account?)'],
      [['status', '--zzzzzz'], '--zzzzzz'],
    ];
    for (const [args, said] of table) {
      it(args.join(' '), async () => {
        const r = await runCli([...args, ...cfg]);
        assert.equal(r.code, 2, r.stderr);
        assert.equal(r.stderr, `pos-token-agent: unknown option ${said}\nSee: pos-token-agent ${args[0]} --help\n`);
        assert.equal(r.stdout, '');
      });
    }
  });
});
