/**
 * The CLI's shared pieces: option parsing in our own words, the socket when the config cannot be used, and
 * the start/restart hints (systemd only when systemd runs the agent of that config).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Writable } from 'node:stream';
import {
  agentUnknownAccount,
  configAccount,
  configOption,
  parse,
  quietOnClosedPipe,
  socketPath,
  UnknownAccountError,
  unknownOption,
  UsageError,
} from '../../src/cli/common.js';
import type { AgentConfig } from '../../src/config/index.js';
import { managedBySystemd, serviceHints, shellQuote, UNIT_CONFIG_PATH } from '../../src/lib/service.js';

const OPTIONS = {
  ...configOption,
  account: { type: 'string', short: 'a' },
  'min-ttl': { type: 'string' },
  json: { type: 'boolean', short: 'j' },
  'no-verify': { type: 'boolean' },
} as const;

function usage(argv: string[]): string {
  try {
    parse(argv, OPTIONS);
  } catch (err) {
    assert.ok(err instanceof UsageError, `not a UsageError: ${String(err)}`);
    return err.message;
  }
  assert.fail(`${JSON.stringify(argv)} parsed`);
}

describe('parse: usage errors in our words', () => {
  for (const [argv, message] of [
    [['--foo'], 'unknown option --foo'],
    [['--foo=bar'], 'unknown option --foo'],
    [['-x'], 'unknown option -x'],
    [['-jx'], 'unknown option -x'],
    [['--__proto__'], 'unknown option --__proto__'],
    [['--account'], '--account needs a value'],
    [['-a'], '--account needs a value'],
    [['--account', '--json'], '--account needs a value'],
    [['--account', '-j'], '--account needs a value'],
    [['--min-ttl'], '--min-ttl needs a value'],
    [['--json=1'], '--json takes no value'],
    [['--no-verify=yes'], '--no-verify takes no value'],
    [['extra'], 'this command takes options only (got 1 other argument)'],
    [['--json', 'secret-1', 'secret-2'], 'this command takes options only (got 2 other arguments)'],
    [['--', '--json'], 'this command takes options only (got 1 other argument)'],
  ] as Array<[string[], string]>) {
    test(`${JSON.stringify(argv)}: ${message}`, () => {
      const m = usage(argv);
      assert.equal(m, message);
      assert.doesNotMatch(m, /To specify|positional|ambiguous|secret/);
    });
  }

  test('good command lines parse as before, values typed', () => {
    assert.deepEqual({ ...parse(['--account', 'shop1', '--json', '-c', '/x.json'], OPTIONS).values }, {
      account: 'shop1',
      json: true,
      config: '/x.json',
    });
    assert.deepEqual({ ...parse(['-ashop1', '--min-ttl=0', '-h'], OPTIONS).values }, { account: 'shop1', 'min-ttl': '0', help: true });
    assert.deepEqual({ ...parse(['--account='], OPTIONS).values }, { account: '' });
    assert.deepEqual({ ...parse(['--config', '/a=b.json'], OPTIONS).values }, { config: '/a=b.json' });
    assert.deepEqual({ ...parse([], OPTIONS).values }, {});
  });

  for (const [argv, message] of [
    [['--acount', 'x'], 'unknown option --acount (did you mean --account?)'],
    [['--acount=secret-value'], 'unknown option --acount (did you mean --account?)'],
    [['--jsn'], 'unknown option --jsn (did you mean --json?)'],
    [['--JSON'], 'unknown option --JSON (did you mean --json?)'],
    [['--min_ttl=5'], 'unknown option --min_ttl (did you mean --min-ttl?)'],
    [['--noverify'], 'unknown option --noverify (did you mean --no-verify?)'],
    [['--hepl'], 'unknown option --hepl (did you mean --help?)'],
    [['--conifg', '/x.json'], 'unknown option --conifg (did you mean --config?)'],
    [['--js'], 'unknown option --js'],
    [['-J'], 'unknown option -J'],
  ] as Array<[string[], string]>) {
    test(`${JSON.stringify(argv)}: ${message}`, () => {
      const m = usage(argv);
      assert.equal(m, message);
      assert.doesNotMatch(m, /secret/);
    });
  }

  test('a dash value that is not an option is passed on, for the command to check (--min-ttl -5)', () => {
    assert.deepEqual({ ...parse(['--min-ttl', '-5'], OPTIONS).values }, { 'min-ttl': '-5' });
    assert.deepEqual({ ...parse(['--min-ttl=-5'], OPTIONS).values }, { 'min-ttl': '-5' });
  });
});

describe('unknownOption: the option meant, for a parser of its own (setup)', () => {
  const known = ['account', 'identity-url', 'non-interactive', 'no-verify', 'from'];
  for (const [raw, message] of [
    ['--identiy-url', 'unknown option --identiy-url (did you mean --identity-url?)'],
    ['--acount=shop', 'unknown option --acount (did you mean --account?)'],
    ['--non-interactiv', 'unknown option --non-interactiv (did you mean --non-interactive?)'],
    ['--frm', 'unknown option --frm (did you mean --from?)'],
    ['--zzzz', 'unknown option --zzzz'],
    ['--account=shop', 'unknown option --account=shop'],
    ['extra', 'unknown option extra'],
    ['-x', 'unknown option -x'],
  ]) {
    test(`${raw}: ${message}`, () => {
      const err = unknownOption(raw!, known);
      assert.ok(err instanceof UsageError);
      assert.equal(err.message, message);
    });
  }
});

describe('unknown accounts: one usage error (exit 2) for every command, from the config or the agent', () => {
  const config = (names: string[]): AgentConfig =>
    ({ source: '/etc/pta/config.json', accounts: Object.fromEntries(names.map((n) => [n, { name: n }])) }) as unknown as AgentConfig;

  test('configAccount: the account, or the accounts the config has, the nearest suggested', () => {
    assert.equal(configAccount(config(['default', 'shop2']), 'shop2').name, 'shop2');
    const cases: Array<[string[], string, string]> = [
      [['default', 'shop2'], 'nope', 'unknown account nope; the config /etc/pta/config.json has: default, shop2; see pos-token-agent status'],
      [['default', 'shop2'], 'shop3', 'unknown account shop3 (did you mean shop2?); the config /etc/pta/config.json has: default, shop2; see pos-token-agent status'],
      [[], 'default', 'unknown account default; the config /etc/pta/config.json has no accounts yet; add one with pos-token-agent setup'],
      [['default'], 'constructor', 'unknown account constructor; the config /etc/pta/config.json has: default; see pos-token-agent status'],
      [['default'], 'two words', 'unknown account "two words"; the config /etc/pta/config.json has: default; see pos-token-agent status'],
    ];
    for (const [names, name, message] of cases) {
      assert.throws(
        () => configAccount(config(names), name),
        (e: unknown) => e instanceof UnknownAccountError && e instanceof UsageError && e.message === message,
        name,
      );
    }
  });

  test('agentUnknownAccount: the agent\'s 404 unknown_account, with or without the accounts it has; nothing for other answers', () => {
    const known = agentUnknownAccount('defualt', { error: 'unknown_account', message: 'no account named defualt', known_accounts: ['default'] });
    assert.ok(known instanceof UnknownAccountError);
    assert.equal(known.message, 'unknown account defualt (did you mean default?); the agent has: default; see pos-token-agent status');
    const old = agentUnknownAccount('x', { error: 'unknown_account', message: 'no account named x' });
    assert.equal(old?.message, 'unknown account x; the agent has no such account; see pos-token-agent status');
    assert.equal(agentUnknownAccount('x', { error: 'not_found', message: 'no entry' }), undefined);
  });
});

describe('quietOnClosedPipe', () => {
  const failing = (code: string): Writable =>
    new Writable({
      write(_chunk, _enc, cb) {
        cb(Object.assign(new Error(`write ${code}`), { code }));
      },
    });

  test('EPIPE: later writes are dropped, nothing is thrown', async () => {
    const stream = failing('EPIPE');
    quietOnClosedPipe(stream);
    stream.write('first\n');
    await new Promise((r) => setImmediate(r));
    assert.equal(stream.destroyed, true);
    stream.write('after\n');
    await new Promise((r) => setImmediate(r));
  });

  test('any other error is thrown as before (as an error event without a listener is)', () => {
    const stream = new Writable({ write: (_c, _e, cb) => cb() });
    quietOnClosedPipe(stream);
    assert.doesNotThrow(() => stream.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })));
    assert.throws(() => stream.emit('error', Object.assign(new Error('write EIO'), { code: 'EIO' })), /write EIO/);
  });
});

describe('socketPath: the default socket when the config cannot be used', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pta-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const run = (values: { socket?: string; config?: string }, env: NodeJS.ProcessEnv = {}): { socket: string; note: string } => {
    const stderr = new PassThrough();
    const chunks: Buffer[] = [];
    stderr.on('data', (c: Buffer) => chunks.push(c));
    const socket = socketPath(values, { env, stderr });
    return { socket, note: Buffer.concat(chunks).toString('utf8') };
  };

  test('a good config: its socket, no note', () => {
    const path = join(dir, 'good.json');
    writeFileSync(path, JSON.stringify({ socket: join(dir, 'x.sock'), accounts: {} }));
    assert.deepEqual(run({ config: path }), { socket: join(dir, 'x.sock'), note: '' });
    assert.deepEqual(run({}, { POS_TOKEN_AGENT_CONFIG: path }), { socket: join(dir, 'x.sock'), note: '' });
  });

  test('--socket wins without reading the config', () => {
    assert.deepEqual(run({ socket: '/s.sock', config: join(dir, 'missing.json') }), { socket: '/s.sock', note: '' });
  });

  const broken: Array<[string, string | undefined, RegExp]> = [
    ['missing.json', undefined, /\(file not found\)/],
    ['truncated.json', '{"socket": "/elsewhere.sock", "proxy": {"url": "http://user:hunter2@proxy:3128"', /\(not valid JSON\)/],
    ['schema.json', JSON.stringify({ socket: 5, proxy: { url: 'http://user:hunter2@proxy:3128' }, accounts: { a: { bogus: 'hunter2' } } }), /\(invalid: \d+ problems, which doctor lists\)/],
    ['directory.json', '(a directory)', /is a directory; give the config file itself/],
  ];
  for (const [name, content, why] of broken) {
    test(`${name}: the default socket (RUNTIME_DIRECTORY's, else /run's), and one line on stderr saying why, without the config's values`, () => {
      const path = join(dir, name);
      if (content === '(a directory)') mkdirSync(path);
      else if (content !== undefined) writeFileSync(path, content);
      const r = run({ config: path }, { RUNTIME_DIRECTORY: join(dir, 'run') });
      assert.equal(r.socket, join(dir, 'run', 'agent.sock'));
      assert.match(r.note, why);
      assert.equal(r.note, `${r.note.split('\n')[0]}\n`, 'one line');
      assert.ok(r.note.includes(path) && r.note.includes(r.socket), r.note);
      assert.ok(!r.note.includes('hunter2'), r.note);
      assert.equal(run({ config: path }).socket, '/run/pos-token-agent/agent.sock');
    });
  }
});

test(
  'socketPath: a config the user may not read (a till user) gives the default socket without a note, as documented',
  { skip: process.getuid?.() === 0 ? 'root reads any file' : false },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'pta-cli-denied-'));
    try {
      const path = join(dir, 'config.json');
      writeFileSync(path, JSON.stringify({ socket: '/elsewhere.sock', accounts: {} }), { mode: 0o000 });
      const stderr = new PassThrough();
      const chunks: Buffer[] = [];
      stderr.on('data', (c: Buffer) => chunks.push(c));
      assert.equal(socketPath({ config: path }, { env: {}, stderr }), '/run/pos-token-agent/agent.sock');
      assert.equal(Buffer.concat(chunks).toString('utf8'), '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

describe('service hints', () => {
  const box = (files: string[]) => ({ exists: (p: string) => files.includes(p) });
  const UNIT = '/etc/systemd/system/pos-token-agent.service';

  test('systemd runs the agent only when systemd runs the box, the unit is installed and the config is the unit\'s', () => {
    assert.equal(managedBySystemd(UNIT_CONFIG_PATH, box(['/run/systemd/system', UNIT])), true);
    assert.equal(managedBySystemd(UNIT_CONFIG_PATH, box(['/run/systemd/system', '/usr/lib/systemd/system/pos-token-agent.service'])), true);
    assert.equal(managedBySystemd(UNIT_CONFIG_PATH, box([UNIT])), false, 'a container or chroot without systemd running');
    assert.equal(managedBySystemd(UNIT_CONFIG_PATH, box(['/run/systemd/system'])), false, 'no unit: installed by hand');
    assert.equal(managedBySystemd('/home/me/agent.json', box(['/run/systemd/system', UNIT])), false, 'another config: started by hand');
  });

  test('the hints: systemctl under systemd, else `run --config` with the config used, quoted for the shell', () => {
    assert.deepEqual(serviceHints(UNIT_CONFIG_PATH, true), {
      start: 'systemctl start pos-token-agent',
      enable: 'systemctl enable --now pos-token-agent.socket pos-token-agent.service',
      restart: 'systemctl restart pos-token-agent; then journalctl -u pos-token-agent',
    });
    const byHand = serviceHints('/tmp/my agent/config.json', false);
    assert.equal(byHand.start, "pos-token-agent run --config '/tmp/my agent/config.json'");
    assert.equal(byHand.enable, byHand.start);
    assert.match(byHand.restart, /^stop the agent and start it again with: pos-token-agent run --config '\/tmp\/my agent\/config\.json'/);
    assert.equal(shellQuote('/etc/pos-token-agent/config.json'), '/etc/pos-token-agent/config.json');
    assert.equal(shellQuote("/tmp/it's"), "'/tmp/it'\\''s'");
  });
});
