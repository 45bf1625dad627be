/**
 * The `token` and `status` commands as a new user meets them: the real CLI (dist/) against a real agent on
 * its Unix socket. A config they cannot use, usage mistakes, what the agent cannot give, the hints when no
 * agent answers, and the last successful login apart from the last attempt.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ask, fixture, forceRefresh, runCli, waitFor, type CliResult, type Fixture } from '../support/harness.js';

/** Node's own parser messages, which the CLI must translate. */
const NODE_WORDING = /To specify|positional argument|argument is ambiguous|<value>' argument missing|does not take an argument/;

function assertUsage(r: CliResult, message: RegExp, what: string): void {
  assert.equal(r.code, 2, `${what}: exit ${r.code}: ${r.stderr}`);
  assert.match(r.stderr, message, what);
  assert.doesNotMatch(r.stderr, NODE_WORDING, what);
  assert.equal(r.stdout, '', what);
}

describe('cli: token and status with a running agent', () => {
  let f: Fixture;
  let token: string;
  before(async () => {
    f = await fixture();
    const p = await f.provision(undefined, []);
    assert.equal(p.code, 0, p.stderr);
    f.agent.start();
    await f.agent.ready();
    token = (await ask(f.socket, '/v1/token')).json.access_token as string;
  });
  after(() => f.cleanup());

  it('token and status use the default socket when the config is missing, not JSON, or fails its checks, and say so on stderr', async () => {
    // The fixture's agent listens at <dir>/run/agent.sock: the default place when RUNTIME_DIRECTORY=<dir>/run.
    const env = { RUNTIME_DIRECTORY: join(f.dir, 'run') };
    const configs: Array<[string, string | undefined, RegExp]> = [
      [join(f.dir, 'missing.json'), undefined, /file not found/],
      [join(f.dir, 'broken.json'), '{"socket": "/nowhere.sock", "accounts": {', /not valid JSON/],
      [join(f.dir, 'schema.json'), JSON.stringify({ socket: '/nowhere.sock', bogus: true, accounts: {} }), /invalid: 1 problem, which doctor lists/],
    ];
    for (const [path, content, why] of configs) {
      if (content !== undefined) writeFileSync(path, content);
      const note = new RegExp(
        `^pos-token-agent: note: cannot use the config ${path.replace(/[.]/g, '\\.')} \\(${why.source}\\); asking the agent at ${f.socket.replace(/[.]/g, '\\.')}\\n$`,
      );
      const t = await runCli(['token', '--config', path], { env });
      assert.equal(t.code, 0, `${path}: ${t.stderr}`);
      assert.equal(t.stdout.trim(), token);
      assert.match(t.stderr, note);
      const s = await runCli(['status'], { env: { ...env, POS_TOKEN_AGENT_CONFIG: path } });
      assert.equal(s.code, 0, `${path}: ${s.stderr}`);
      assert.match(s.stdout, /default \(eta-ereceipt\): fresh/);
      assert.match(s.stderr, note);
      assert.ok(!t.stderr.includes(token) && !s.stderr.includes(token));
    }
  });

  it('exit 2 for usage mistakes, in our own words', async () => {
    const cfg = ['--config', f.configPath];
    for (const args of [['--min-ttl', '-5'], ['--min-ttl=-5'], ['--min-ttl', 'abc'], ['--min-ttl', '86401'], ['--min-ttl', '1.5']]) {
      assertUsage(await runCli(['token', ...args, ...cfg]), /^pos-token-agent: --min-ttl takes whole seconds from 0 to 86400\n/, args.join(' '));
    }
    for (const name of ['bad name', '-x', 'x'.repeat(65)]) {
      assertUsage(await runCli(['token', `--account=${name}`, ...cfg]), /^pos-token-agent: --account: an account name is 1 to 64 letters/, name);
    }
    assertUsage(await runCli(['token', '--account', ...cfg]), /^pos-token-agent: --account needs a value\n/, '--account --config');
    assertUsage(await runCli(['token', ...cfg, '--account']), /^pos-token-agent: --account needs a value\n/, 'trailing --account');
    assertUsage(await runCli(['token', '--json=yes', ...cfg]), /^pos-token-agent: --json takes no value\n/, '--json=yes');
    assertUsage(await runCli(['token', 'default', ...cfg]), /^pos-token-agent: this command takes options only/, 'a positional');
    for (const command of ['token', 'status', 'run', 'provision', 'identity', 'doctor', 'emulator', 'demo']) {
      assertUsage(await runCli([command, '--foo']), new RegExp(`^pos-token-agent: unknown option --foo\\nSee: pos-token-agent ${command} --help\\n$`), command);
    }
  });

  it('an account the agent does not have: exit 2, naming the accounts it has', async () => {
    const r = await runCli(['token', '--account', 'nobody', '--config', f.configPath]);
    assertUsage(r, /^pos-token-agent: unknown account nobody; the agent has: default; see pos-token-agent status\n$/, 'unknown account');
  });

  it('a min_ttl longer than the tokens live: exit 1, saying the lifetime and what was asked', async () => {
    const r = await runCli(['token', '--min-ttl', '5000', '--config', f.configPath]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, 'pos-token-agent: no token of account default can have 5000 s left: its tokens live 3600 s; ask for less with --min-ttl\n');
    const json = await runCli(['token', '--min-ttl', '5000', '--json', '--config', f.configPath]);
    assert.equal(json.code, 1);
    assert.deepEqual(JSON.parse(json.stdout), {
      error: 'min_ttl_unsatisfiable',
      message: "min_ttl 5000 s is longer than the lifetime of this account's tokens (3600 s)",
      min_ttl: 5000,
      lifetime_s: 3600,
    });
  });
});

describe('cli: hints when no agent answers', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
  });
  after(() => f.cleanup());

  it('token and status say to start the agent with the config they used, not with systemctl, when systemd does not run it', async () => {
    for (const command of ['token', 'status']) {
      const r = await runCli([command, '--config', f.configPath]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(
        r.stderr,
        `pos-token-agent: the agent is not running (no socket answering at ${f.socket}); start it with: pos-token-agent run --config ${f.configPath}\n`,
      );
    }
    const other = join(f.dir, 'other dir');
    mkdirSync(other);
    const config = join(other, 'config.json');
    writeFileSync(config, JSON.stringify({ socket: join(other, 'agent.sock'), accounts: {} }));
    const r = await runCli(['status'], { env: { POS_TOKEN_AGENT_CONFIG: config } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`start it with: pos-token-agent run --config '${config.replace(/[.]/g, '\\.')}'\\n$`));
  });
});

describe('cli: status after a failed login', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    const p = await f.provision(undefined, []);
    assert.equal(p.code, 0, p.stderr);
    f.agent.start();
    await f.agent.ready();
  });
  after(() => f.cleanup());

  it('shows the last successful login apart from the last attempt', async () => {
    const before = JSON.parse((await runCli(['status', '--json', '--config', f.configPath])).stdout);
    const success = before.accounts.default.last_success_at as string;
    assert.match(success, /^\d{4}-\d\d-\d\dT/);
    assert.equal(before.accounts.default.last_login_at, success);

    // Every login fails from now on: the last attempt moves on, the last success stays.
    f.emulator.setFaults({ fail5xx: 10_000 });
    const current = (await ask(f.socket, '/v1/token')).json.access_token as string;
    const refused = await forceRefresh(f.socket, current);
    assert.equal(refused.status, 503, refused.text);
    const failed = await waitFor('the failed attempt in the status', async () => {
      const r = await runCli(['status', '--json', '--config', f.configPath]);
      const a = JSON.parse(r.stdout).accounts.default;
      return a.last_error?.reason === 'upstream_unavailable' ? a : undefined;
    });
    assert.equal(failed.last_success_at, success);
    assert.ok(Date.parse(failed.last_login_at) > Date.parse(success), `${failed.last_login_at} after ${success}`);

    const human = await runCli(['status', '--config', f.configPath]);
    assert.equal(human.code, 1, 'no usable token');
    assert.match(human.stdout, new RegExp(`\\n  last success:  ${success.replace(/[.]/g, '\\.')}\\n`));
    const attempt = /\n {2}last attempt: {2}(\S+)\n/.exec(human.stdout)?.[1];
    assert.ok(attempt && Date.parse(attempt) > Date.parse(success), human.stdout);
    assert.match(human.stdout, /\n {2}last error: {4}upstream_unavailable at /);
    f.emulator.clearFaults();
  });
});

describe("cli: Node's module compile cache in $CACHE_DIRECTORY (systemd's CacheDirectory=)", () => {
  const hasCompileCache = typeof (process.getBuiltinModule('node:module') as { enableCompileCache?: unknown }).enableCompileCache === 'function';

  it('is kept there on a Node that has one (22.1 and later); a command runs the same either way', { skip: hasCompileCache ? false : `Node ${process.version} has no module compile cache` }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pta-compile-cache-'));
    try {
      const r = await runCli(['--version'], { env: { ...process.env, CACHE_DIRECTORY: dir } });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
      const cached = readdirSync(dir, { recursive: true }).filter((f) => statSync(join(dir, String(f))).isFile());
      assert.ok(cached.length > 0, 'compiled modules were written to the cache');
      const again = await runCli(['--version'], { env: { ...process.env, CACHE_DIRECTORY: dir } });
      assert.equal(again.stdout, r.stdout, 'the second start reads the cache and answers the same');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
