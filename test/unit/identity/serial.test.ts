/**
 * The serial source against a real pseudo-terminal pair (socat), a simulated fiscal module on
 * the far end. Timeouts are real here: the module answers on the real time line.
 */
import assert from 'node:assert/strict';
import { symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { createIdentityReader, type IdentityReaderOptions, type SerialSource } from '../../../src/identity/index.js';
import { serialReadBoundMs } from '../../../src/identity/serial.js';
import { openPtyPair, ptySkipReason, type PtyPair } from '../../support/pty.js';
import { startFakeModule, type Behaviour, type FakeModule } from './fake-module.js';
import { account, profile, profileDir, SHIPPED_PROFILES, tree } from './helpers.js';

const query = (extra: Partial<SerialSource> = {}): SerialSource => ({
  source: 'serialport',
  path: '${PORT}',
  baudRate: 9600,
  request: 'SN?\r\n',
  response: '^SN=(.*)$',
  timeoutMs: 300,
  retries: 0,
  retryPauseMs: 20,
  ...extra,
});

describe('serial source on a pty pair', { skip: ptySkipReason }, () => {
  let pty: PtyPair;
  let module: FakeModule | undefined;
  let profiles: { dir: string; remove: () => void };

  beforeEach(async () => {
    pty = await openPtyPair();
    profiles = profileDir({});
  });
  afterEach(async () => {
    await module?.close();
    module = undefined;
    await pty.close();
    profiles.remove();
  });

  const start = async (behaviour: Behaviour) => (module = await startFakeModule(pty.b, behaviour));

  /** Reads posserial with a profile holding `source`; returns the reading and how long it took. */
  async function readWith(source: SerialSource | SerialSource[], options: Partial<IdentityReaderOptions> = {}) {
    const name = `s${Math.random().toString(36).slice(2, 8)}`;
    writeFileSync(join(profiles.dir, `${name}.json`), JSON.stringify(profile(name, { posserial: source })));
    const reader = createIdentityReader({ profileDirs: [profiles.dir], env: { PORT: pty.a }, random: () => 0.5, ...options });
    const started = performance.now();
    const reading = await reader.read(account({ deviceProfile: name }));
    return { reading, ms: performance.now() - started };
  }

  test('the shipped serial-fiscal-module profile: SN?\\r\\n answered with SN=<serial>\\r\\n, port from POS_FISCAL_PORT', async () => {
    await start((q) => (q === 'SN?' ? { send: 'SN=FM-000123\r\n' } : 'silent'));
    const reader = createIdentityReader({ profileDirs: [SHIPPED_PROFILES], root: tree('x86'), env: { POS_FISCAL_PORT: pty.a } });
    const r = await reader.read(account({ deviceProfile: 'serial-fiscal-module' }));
    assert.deepEqual(r.values, {
      posserial: { value: 'FM-000123', source: `serialport ${pty.a}` },
      pososversion: { value: 'Debian GNU/Linux 12', source: 'os-release {NAME} {VERSION_ID}' },
      posmodelframework: { value: '1', source: 'static' },
    });
    assert.deepEqual(module!.queries, ['SN?']);
  });

  test('blank lines before the answer are skipped; another delimiter can end the answer', async () => {
    await start(() => ({ send: '\x03\x03SN= ABC 9 \x03' }));
    const { reading } = await readWith(query({ delimiter: '\u0003' }));
    assert.deepEqual(reading.values.posserial, { value: 'ABC 9', source: `serialport ${pty.a}` });
  });

  test('garbage: an answer that does not match the response regex is a clear error, after the retries', async () => {
    await start(() => ({ send: 'ERR 42\r\n' }));
    const { reading } = await readWith(query({ retries: 1 }));
    assert.equal(
      reading.errors.posserial,
      `serialport ${pty.a}: all 2 tries (300 ms each) failed: the answer "ERR 42" does not match /^SN=(.*)$/`,
    );
    assert.deepEqual(module!.queries, ['SN?', 'SN?']);
  });

  test('garbage without the delimiter (a wrong baud rate) says what arrived', async () => {
    await start(() => ({ send: '\x15\xfe' }));
    const { reading } = await readWith(query({ timeoutMs: 200 }));
    assert.equal(
      reading.errors.posserial,
      `serialport ${pty.a}: the only try (200 ms each) failed: no complete answer within 200 ms: 2 bytes without ` +
        'the delimiter "\\r\\n" ("\\x15\\xfe"; wrong baud rate or delimiter?)',
    );
  });

  test('a late answer: the try times out, the next try succeeds (the stale answer is discarded)', async () => {
    await start((_, n) => (n === 0 ? { send: 'SN=LATE-1\r\n', afterMs: 500 } : { send: `SN=ON-TIME-${n + 1}\r\n` }));
    const { reading } = await readWith(query({ timeoutMs: 250, retries: 2 }));
    assert.deepEqual(reading.values.posserial, { value: 'ON-TIME-2', source: `serialport ${pty.a}` });
    assert.deepEqual(module!.queries, ['SN?', 'SN?']);
  });

  test('always late: every try times out, and the read fails within its bound', async () => {
    await start(() => ({ send: 'SN=TOO-LATE\r\n', afterMs: 450 }));
    const source = query({ timeoutMs: 150, retries: 1 });
    const { reading, ms } = await readWith(source);
    assert.equal(reading.errors.posserial, `serialport ${pty.a}: all 2 tries (150 ms each) failed: no answer within 150 ms`);
    assert.ok(ms < serialReadBoundMs(source), `took ${ms} ms`);
  });

  test('no answer at all: bounded failure, tries x timeout plus the pauses', async () => {
    await start(() => 'silent');
    const source = query({ timeoutMs: 200, retries: 2, retryPauseMs: 50 });
    const { reading, ms } = await readWith(source);
    assert.equal(reading.errors.posserial, `serialport ${pty.a}: all 3 tries (200 ms each) failed: no answer within 200 ms`);
    assert.deepEqual(module!.queries, ['SN?', 'SN?', 'SN?']);
    assert.ok(ms >= 3 * 200 + 2 * 50 - 5, `took ${ms} ms`);
    assert.ok(ms < serialReadBoundMs(source), `took ${ms} ms, bound ${serialReadBoundMs(source)} ms`);
  });

  test('a port that does not exist fails at once with the path, and the next source is tried', async () => {
    const { reading } = await readWith([query({ path: '/nonexistent/ttyQ', retries: 0 })]);
    assert.match(reading.errors.posserial!, /^serialport \/nonexistent\/ttyQ: the only try \(300 ms each\) failed: cannot open \/nonexistent\/ttyQ: /);
  });

  test('concurrent reads of one port by different readers are serialised: the module sees one query at a time', async () => {
    await start((q) => ({ send: q === 'ID?' ? 'ID=BBB\r\n' : 'SN=AAA\r\n', afterMs: 150 }));
    // A second link to the same pty: the lock is per real device, not per spelling of its path.
    const alias = join(dirname(pty.a), 'alias');
    symlinkSync(pty.a, alias);
    const reads = await Promise.all([
      readWith(query()),
      readWith(query({ request: 'ID?\r\n', response: '^ID=(.*)$' })),
      readWith(query({ path: alias, request: 'ID?\r\n', response: '^ID=(\\w)' })),
    ]);
    assert.deepEqual(
      reads.map((r) => r.reading.values.posserial?.value),
      ['AAA', 'BBB', 'B'],
    );
    assert.equal(module!.queries.length, 3);
    assert.equal(module!.maxOutstanding, 1, 'a query arrived while another was unanswered');
  });

  test('identical concurrent reads share the one in progress: one query, the same answer for both', async () => {
    await start((_, n) => ({ send: `SN=SHARED-${n + 1}\r\n`, afterMs: 100 }));
    const [a, b] = await Promise.all([readWith(query()), readWith(query())]);
    assert.equal(a.reading.values.posserial?.value, 'SHARED-1');
    assert.equal(b.reading.values.posserial?.value, 'SHARED-1');
    assert.deepEqual(module!.queries, ['SN?']);
  });
});
