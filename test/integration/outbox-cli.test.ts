/**
 * `outbox list|show|retry|cancel` and the outbox line of `status`: the real CLI (dist/) against a real agent whose
 * account's apiUrl is a loopback port where nothing listens, so that every entry stays queued (the head one is
 * tried and fails, again and again; the others wait behind it, which keeps their state certain).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createAgentClient, type AgentClient, type OutboxEntryBody } from '../../src/api/index.js';
import { fixture, runCli, waitFor, type Fixture } from '../support/harness.js';

/** A loopback port nothing listens on: one the system gave, then closed. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('cli: outbox with a running agent whose API does not answer', () => {
  let f: Fixture;
  let client: AgentClient;
  let cfg: string[];
  const ids: string[] = [];

  before(async () => {
    f = await fixture();
    f.writeConfig({ apiUrl: `http://127.0.0.1:${await deadPort()}` });
    const p = await f.provision(undefined, []);
    assert.equal(p.code, 0, p.stderr);
    f.agent.start();
    await f.agent.ready();
    cfg = ['--config', f.configPath];
    client = createAgentClient({ socket: f.socket });
    for (const [i, key] of [['1', 'till-1'], ['2', undefined]] as const) {
      const r = await client.enqueue({ path: '/api/v1/receipts', body: { receipt: i, total: 12.5 }, ...(key ? { key } : {}) });
      assert.ok(r.ok && r.created, JSON.stringify(r));
      ids.push(r.enqueued.id);
    }
    // The head entry has been tried once and failed: it has a last error.
    await waitFor('the first failed delivery', async () => {
      const r = await client.outboxEntry(ids[0]!);
      return r.ok && r.entry.last_error !== null ? true : undefined;
    });
  });
  after(() => f.cleanup());

  it('list: a table, what waits first (id, account, state, attempts, created, last error), a page at a time; --json the agent\'s body; an unknown account is exit 2', async () => {
    const r = await runCli(['outbox', 'list', ...cfg]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^ID {36}ACCOUNT {2}STATE +ATTEMPTS {2}CREATED +LAST ERROR$/);
    assert.equal(lines.length, 3, r.stdout);
    for (const column of ['STATE', 'ATTEMPTS', 'CREATED']) {
      const at = lines[0]!.indexOf(column);
      assert.ok(lines.slice(1).every((l) => l[at - 1] === ' ' && l[at - 2] === ' ' && l[at] !== ' '), `${column} aligned:\n${r.stdout}`);
    }
    assert.ok(lines[1]!.startsWith(`${ids[0]}  default  `), lines[1]);
    assert.match(lines[1]!, /(queued|sending) +[1-9]\d* +\d\d:\d\d:\d\dZ +\S/, 'tried and failed, the error shown');
    assert.match(lines[2]!, new RegExp(`^${ids[1]}  default  queued +0 +\\d\\d:\\d\\d:\\d\\dZ$`));

    const json = await runCli(['outbox', 'list', '--json', '--state', 'queued', '--account', 'default', ...cfg]);
    assert.equal(json.code, 0, json.stderr);
    const entries = (JSON.parse(json.stdout) as { entries: OutboxEntryBody[] }).entries;
    assert.ok(entries.some((e) => e.id === ids[1]));
    assert.ok(entries.every((e) => e.state === 'queued' && e.account === 'default' && e.path === '/api/v1/receipts'));

    const none = await runCli(['outbox', 'list', '--state', 'delivered', ...cfg]);
    assert.equal(none.code, 0, none.stderr);
    assert.equal(none.stdout, 'no delivered outbox entries\n');
    const limited = await runCli(['outbox', 'list', '--limit', '1', ...cfg]);
    assert.equal(limited.stdout.trimEnd().split('\n').length, 2);
    assert.ok(limited.stdout.includes(ids[0]!), 'the first page: the head');
    const next = /note: more entries follow; the next page: pos-token-agent (outbox list .*)\n$/.exec(limited.stderr);
    assert.ok(next, limited.stderr);
    assert.match(next[1]!, new RegExp(`^outbox list --config ${f.configPath} --limit 1 --after \\S+$`));
    const page2 = await runCli(next[1]!.split(' '));
    assert.equal(page2.code, 0, page2.stderr);
    assert.match(page2.stdout.trimEnd().split('\n')[1]!, new RegExp(`^${ids[1]}  `), 'the second page: the one after it');
    assert.equal(page2.stderr, '', 'nothing follows');
    const after = /--after (\S+)$/.exec(next[1]!)![1]!;
    const json2 = await runCli(['outbox', 'list', '--json', '--limit', '1', '--after', after, ...cfg]);
    assert.deepEqual((JSON.parse(json2.stdout) as { entries: OutboxEntryBody[]; next: unknown }).next, null);

    const nobody = await runCli(['outbox', 'list', '--account', 'nope', ...cfg]);
    assert.equal(nobody.code, 2, nobody.stderr);
    assert.match(nobody.stderr, /the agent has no account nope; its accounts: default/);
    assert.equal(nobody.stdout, '');
  });

  it('show: the entry\'s fields and the body as enqueued, pretty-printed; --json the agent\'s answer', async () => {
    const r = await runCli(['outbox', 'show', ids[1]!, ...cfg]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^id: {12}${ids[1]}\\n`));
    assert.match(r.stdout, /\nkey: {11}-\n/);
    assert.match(r.stdout, /\nrequest: {7}POST \/api\/v1\/receipts\n/);
    assert.match(r.stdout, /\nstate: {9}queued\n/);
    assert.match(r.stdout, /\nresponse: {6}-\n/);
    assert.match(r.stdout, /\nbody:\n {2}\{\n {4}"receipt": "2",\n {4}"total": 12\.5\n {2}\}\n$/);
    const first = await runCli(['outbox', 'show', '--json', ids[0]!, ...cfg]);
    assert.equal(first.code, 0, first.stderr);
    const entry = JSON.parse(first.stdout) as OutboxEntryBody;
    assert.equal(entry.key, 'till-1');
    assert.deepEqual(entry.body, { receipt: '1', total: 12.5 });
    assert.match(entry.last_error ?? '', /\S/);
  });

  it('cancel, cancel again (exit 1, saying the state and what to do), retry: queued again', async () => {
    const id = ids[1]!;
    const c = await runCli(['outbox', 'cancel', id, ...cfg]);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout, `${id}: cancelled; it will not be sent (pos-token-agent outbox retry ${id} queues it again)\n`);
    const again = await runCli(['outbox', 'cancel', id, ...cfg]);
    assert.equal(again.code, 1);
    assert.equal(again.stdout, '');
    assert.equal(
      again.stderr,
      `pos-token-agent: entry ${id} is cancelled: only a queued entry can be cancelled; it was cancelled already; ` +
        `to send it after all: pos-token-agent outbox retry ${id}\n`,
    );
    const json = await runCli(['outbox', 'cancel', '--json', id, ...cfg]);
    assert.equal(json.code, 1);
    assert.deepEqual(JSON.parse(json.stdout), { error: 'not_cancellable', message: 'only a queued entry can be cancelled; this one is cancelled', state: 'cancelled' });
    const r = await runCli(['outbox', 'retry', id, ...cfg]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${id}: queued for account default; it is sent in its turn`));
    const shown = await client.outboxEntry(id);
    assert.ok(shown.ok && shown.entry.state === 'queued');
  });

  it('an id the agent does not have: exit 1; not an id, no id, a bad option: exit 2', async () => {
    const unknown = randomUUID();
    const r = await runCli(['outbox', 'retry', unknown, ...cfg]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `pos-token-agent: no outbox entry ${unknown} (it may have been pruned; outbox list shows those kept)\n`);
    const usage: Array<[string[], RegExp]> = [
      [['outbox', 'show', 'not-an-id'], /an entry id is a UUID/],
      [['outbox', 'cancel'], /outbox cancel needs the id of an entry/],
      [['outbox'], /outbox needs a subcommand: list, show, retry, cancel/],
      [['outbox', 'send'], /unknown outbox subcommand "send"/],
      [['outbox', 'list', '--state', 'lost'], /--state is one of queued, sending, delivered, rejected, cancelled/],
      [['outbox', 'list', '--limit', '1001'], /--limit takes a whole number from 1 to 1000/],
      [['outbox', 'list', '--account', 'a b'], /--account: an account name is/],
      [['outbox', 'show', ids[0]!, '--state', 'queued'], /--state is for outbox list only/],
      [['outbox', 'list', '--foo'], /unknown option --foo/],
    ];
    for (const [args, message] of usage) {
      const u = await runCli([...args, ...cfg]);
      assert.equal(u.code, 2, `${args.join(' ')}: ${u.stderr}`);
      assert.match(u.stderr, message, args.join(' '));
      assert.match(u.stderr, /\nSee: pos-token-agent outbox --help\n$/);
      assert.equal(u.stdout, '');
    }
  });

  it('status shows the account\'s outbox line; --help and the command list name the command', async () => {
    const s = await runCli(['status', ...cfg]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /\n {2}outbox: {8}2 queued, oldest \d+ s, last error: \S/);
    const help = await runCli(['outbox', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: pos-token-agent outbox list/);
    assert.match((await runCli(['--help'])).stdout, /\n {2}outbox {5}list, show, retry or cancel/);
  });
});
