/**
 * What the outbox commands print, from the agent's answers: the list's table, one entry's lines, status's outbox
 * line; and how `outbox show ID --json` is split into its words and options.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { OutboxEntryBody } from '../../src/api/index.js';
import { entryLines, entryTable, nextPageCommand, noEntries } from '../../src/cli/commands/outbox.js';
import { outboxSummary, shorten, shortTime } from '../../src/cli/commands/token.js';
import { splitPositionals } from '../../src/cli/common.js';

const NOW = Date.parse('2026-03-02T12:00:00.000Z');
const ENTRY: OutboxEntryBody = {
  id: '0b5c3a52-4f0e-4d8e-9a57-2a1f7c1d9e01',
  account: 'default',
  key: null,
  method: 'POST',
  path: '/api/v1/receipts',
  state: 'queued',
  attempts: 4,
  created_at: '2026-03-02T10:42:07.123Z',
  delivered_at: null,
  last_error: 'connect ECONNREFUSED 127.0.0.1:9',
  response: null,
};

describe('outbox output', () => {
  test('list: a column per field padded to its widest value, the last error cut to one line; older days in full', () => {
    const other: OutboxEntryBody = {
      ...ENTRY,
      id: '1b5c3a52-4f0e-4d8e-9a57-2a1f7c1d9e02',
      account: 'shop-2',
      state: 'rejected',
      attempts: 12,
      created_at: '2026-03-01T23:59:59.000Z',
      last_error: `HTTP 422:\n${'x'.repeat(100)}`,
    };
    assert.deepEqual(entryTable([ENTRY, other], NOW), [
      'ID                                    ACCOUNT  STATE     ATTEMPTS  CREATED               LAST ERROR',
      '0b5c3a52-4f0e-4d8e-9a57-2a1f7c1d9e01  default  queued    4         10:42:07Z             connect ECONNREFUSED 127.0.0.1:9',
      `1b5c3a52-4f0e-4d8e-9a57-2a1f7c1d9e02  shop-2   rejected  12        2026-03-01T23:59:59Z  HTTP 422: ${'x'.repeat(47)}...`,
    ]);
  });

  test('list: an empty page says which entries there are none of; a full one, the command for the next page', () => {
    assert.equal(noEntries({}), 'no outbox entries');
    assert.equal(noEntries({ state: 'queued' }), 'no queued outbox entries');
    assert.equal(noEntries({ account: 'shop-2' }), 'no outbox entries of account shop-2');
    assert.equal(noEntries({ account: 'shop-2', state: 'rejected', after: 'w12' }), 'no more rejected outbox entries of account shop-2');
    assert.equal(nextPageCommand({ limit: 100 }, 'w12'), 'pos-token-agent outbox list --after w12');
    assert.equal(
      nextPageCommand({ account: 'shop-2', state: 'delivered', limit: 20, after: 'f3' }, 'f40'),
      'pos-token-agent outbox list --account shop-2 --state delivered --limit 20 --after f40',
    );
    assert.equal(
      nextPageCommand({ limit: 100 }, 'w12', ['--config', '/etc/pos token/config.json', '--socket', "/run/it's.sock"]),
      `pos-token-agent outbox list --config '/etc/pos token/config.json' --socket '/run/it'\\''s.sock' --after w12`,
    );
  });

  test('show: a line per fact, the API\'s answer and the body pretty-printed and indented', () => {
    const lines = entryLines({ ...ENTRY, key: 'r-1', position: 1, response: { status: 503, body: 'busy' }, body: { total: 12.5 } });
    assert.deepEqual(lines, [
      'id:            0b5c3a52-4f0e-4d8e-9a57-2a1f7c1d9e01',
      'account:       default',
      'key:           r-1',
      'request:       POST /api/v1/receipts',
      'state:         queued (position 1)',
      'attempts:      4',
      'created at:    2026-03-02T10:42:07.123Z',
      'delivered at:  -',
      'last error:    connect ECONNREFUSED 127.0.0.1:9',
      'response:      503',
      '  busy',
      'body:',
      '  {',
      '    "total": 12.5',
      '  }',
    ]);
  });

  test('status\'s outbox line: what waits, the oldest\'s age, the last delivery (time alone today) and the last error', () => {
    const o = { queued: 3, oldest_queued_s: 150, last_delivered_at: '2026-03-02T10:42:07.500Z', last_error: 'HTTP 503' };
    assert.equal(outboxSummary(o, NOW), '3 queued, oldest 2 min, last delivered 10:42:07Z, last error: HTTP 503');
    assert.equal(outboxSummary({ queued: 0, oldest_queued_s: null, last_delivered_at: null, last_error: null }, NOW), '0 queued');
    assert.equal(shortTime('2026-02-28T01:02:03.000Z', NOW), '2026-02-28T01:02:03Z');
    assert.equal(shorten('a\n  b', 10), 'a b');
    assert.equal(shorten('abcdefghijkl', 8), 'abcde...');
  });

  test('words and options apart: an option\'s value is not a word; what parse must check stays with the options', () => {
    const options = { json: { type: 'boolean' }, state: { type: 'string' }, config: { type: 'string', short: 'c' } } as const;
    assert.deepEqual(splitPositionals(['show', '--json', 'ID', '-c', 'list'], options), { words: ['show', 'ID'], rest: ['--json', '-c', 'list'] });
    assert.deepEqual(splitPositionals(['list', '--state=queued', '--foo'], options), { words: ['list'], rest: ['--state=queued', '--foo'] });
    assert.deepEqual(splitPositionals(['--', 'show', '-x'], options), { words: ['show', '-x'], rest: [] });
  });
});
