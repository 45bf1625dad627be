import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  createIdentityResolver,
  requiredFields,
  sendsDeviceHeaders,
} from '../../../src/identity/index.js';
import { checkValue } from '../../../src/identity/fields.js';
import { deviceHeadersOf } from '../../../src/authorities/index.js';
import { createPortLocks, requestBytes, retryPauseMs, showBytes } from '../../../src/identity/serial.js';
import { expandPath, isDmiPlaceholder, parseOsRelease } from '../../../src/identity/sources.js';
import { account, SHIPPED_PROFILES, tree } from './helpers.js';

const resolver = (root: string) => createIdentityResolver({ profileDirs: [SHIPPED_PROFILES], root, env: {} }, deviceHeadersOf);

describe('createIdentityResolver: what provision calls before a login', () => {
  /** An account without a device profile reads no profile, whatever the profile directories hold. */
  const resolveIdentity = resolver('/');

  test('an eReceipt account without deviceProfile and without posserial is refused naming the config key', async () => {
    const r = await resolveIdentity(account());
    assert.deepEqual(r, {
      ok: false,
      message: 'account main: no posserial; set accounts.main.identity.posserial in the config, or give the account a deviceProfile',
    });
  });

  test('an account without deviceProfile gets its config identity, as before profiles', async () => {
    const identity = { posserial: 'SN-1', pososversion: 'os' };
    assert.deepEqual(await resolveIdentity(account({ identity })), { ok: true, identity });
  });

  test('a profile on a matching box gives every value', async () => {
    assert.deepEqual(await resolver(tree('x86'))(account({ deviceProfile: 'generic-x86' })), {
      ok: true,
      identity: { posserial: 'PF3XK2A9', pososversion: 'Debian GNU/Linux 12', posmodelframework: '1' },
    });
  });

  test('a required value the profile cannot read is refused with the reason of each source', async () => {
    const r = await resolver(tree('x86-noserial'))(account({ deviceProfile: 'generic-x86' }));
    assert.deepEqual(r, {
      ok: false,
      message:
        'account main (device profile generic-x86): no posserial (dmi product_serial: holds the placeholder "Default string"; ' +
        'dmi board_serial: cannot read /sys/class/dmi/id/board_serial: not found)',
    });
  });

  test('a value the profile gives sources for must be readable even when not required', async () => {
    const r = await resolver(tree('x86'))(account({ deviceProfile: 'manual', identity: { posserial: 'SN-1', pososversion: 'os' } }));
    assert.deepEqual(r, {
      ok: false,
      message:
        'account main (device profile manual): no posmodelframework (config identity.posmodelframework: ' +
        'accounts.main.identity.posmodelframework is not set in the config)',
    });
  });

  test('an unknown profile is refused, not thrown', async () => {
    const r = await resolver(tree('x86'))(account({ deviceProfile: 'nope' }));
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.message : '', /^no device profile named "nope" in /);
  });

  test('authorities that send no device headers get the config identity without any profile being read', async () => {
    // Config refuses deviceProfile and identity on such an account; the resolver still reads no profile if given them.
    const acc = { ...account({}, 'oauth2'), deviceProfile: 'nope', identity: { posserial: 'X' } };
    assert.deepEqual(await resolver(tree('x86'))(acc), { ok: true, identity: { posserial: 'X' } });
  });

  test('required fields per authority', () => {
    // The authority's module says which (deviceHeadersOf reads it from the registry).
    assert.deepEqual(requiredFields(deviceHeadersOf({ authority: 'eta-ereceipt' })), ['posserial']);
    for (const a of ['eta-einvoicing', 'myinvois', 'impact-gr', 'sepay', 'oauth2'] as const) {
      assert.deepEqual(requiredFields(deviceHeadersOf({ authority: a })), []);
      assert.equal(sendsDeviceHeaders(deviceHeadersOf({ authority: a })), false);
    }
    assert.equal(sendsDeviceHeaders(deviceHeadersOf({ authority: 'eta-ereceipt' })), true);
  });
});

describe('identity: pure rules', () => {
  test('checkValue: trimmed, at most the header limit, printable ASCII', () => {
    const cases: Array<[Parameters<typeof checkValue>, ReturnType<typeof checkValue>]> = [
      [['posserial', '  SN-1\n'], { ok: true, value: 'SN-1' }],
      [['posserial', 'x'.repeat(100)], { ok: true, value: 'x'.repeat(100) }],
      [['posserial', 'x'.repeat(101)], { ok: false, empty: false, message: 'value is 101 characters; the posserial header takes at most 100 (not truncated)' }],
      [['pososversion', 'o'.repeat(50)], { ok: true, value: 'o'.repeat(50) }],
      [['pososversion', 'o'.repeat(51)], { ok: false, empty: false, message: 'value is 51 characters; the pososversion header takes at most 50 (not truncated)' }],
      [['posmodelframework', '1234567890'], { ok: true, value: '1234567890' }],
      [['posmodelframework', '12345678901'], { ok: false, empty: false, message: 'value is 11 characters; the posmodelframework header takes at most 10 (not truncated)' }],
      [['posserial', ' \t\n'], { ok: false, empty: true, message: 'empty value' }],
      [['posserial', 'A\u0000B'], { ok: false, empty: false, message: 'value has a character outside printable ASCII (U+0000 at position 2); the posserial header takes printable ASCII only' }],
    ];
    for (const [args, expected] of cases) assert.deepEqual(checkValue(...args), expected, JSON.stringify(args));
  });

  test('parseOsRelease: quoted, single-quoted, escaped and bare values; comments ignored', () => {
    assert.deepEqual(
      parseOsRelease('# comment\nNAME="Debian GNU/Linux"\nID=debian\nPRETTY_NAME=\'Arch Linux\'\nQUOTE="say \\"hi\\" \\$5"\nBAD LINE\n  VERSION_ID="12"  \n'),
      { NAME: 'Debian GNU/Linux', ID: 'debian', PRETTY_NAME: 'Arch Linux', QUOTE: 'say "hi" $5', VERSION_ID: '12' },
    );
  });

  test('isDmiPlaceholder: firmware placeholders and runs of one character', () => {
    for (const v of ['To Be Filled By O.E.M.', 'Default string', 'System Serial Number', 'Not Specified', '0000000000', 'FFFFFFFF', ' 0123456789 ']) {
      assert.equal(isDmiPlaceholder(v), true, v);
    }
    for (const v of ['PF3XK2A9', 'M80-C1234567', 'CND1234XYZ']) assert.equal(isDmiPlaceholder(v), false, v);
  });

  test('expandPath: ${VAR} and ${VAR:-default} in a serial path', () => {
    const env = { PORT: '/dev/ttyS1', EMPTY: '', REL: 'ttyS0' };
    assert.deepEqual(expandPath('/dev/ttyUSB0', env), { ok: true, path: '/dev/ttyUSB0' });
    assert.deepEqual(expandPath('${PORT}', env), { ok: true, path: '/dev/ttyS1' });
    assert.deepEqual(expandPath('${PORT:-/dev/ttyUSB0}', env), { ok: true, path: '/dev/ttyS1' });
    assert.deepEqual(expandPath('${NOPE:-/dev/ttyUSB0}', env), { ok: true, path: '/dev/ttyUSB0' });
    assert.deepEqual(expandPath('${EMPTY:-/dev/ttyUSB0}', env), { ok: true, path: '/dev/ttyUSB0' });
    assert.deepEqual(expandPath('${NOPE}', env), { ok: false, reason: 'NOPE is not set (used in the port path ${NOPE})' });
    assert.deepEqual(expandPath('${REL}', env), { ok: false, reason: 'the port path "ttyS0" is not absolute' });
  });

  test('retryPauseMs: the base jittered by +-50%', () => {
    const cases: Array<[number, number, number]> = [
      [200, 0, 100],
      [200, 0.5, 200],
      [200, 0.999, 300],
      [0, 0.7, 0],
    ];
    for (const [base, r, expected] of cases) assert.equal(retryPauseMs(base, () => r), expected);
  });

  test('requestBytes: text one byte a character, or hex', () => {
    assert.deepEqual(requestBytes({ request: 'SN?\r\n' }), Buffer.from([0x53, 0x4e, 0x3f, 0x0d, 0x0a]));
    assert.deepEqual(requestBytes({ request: '\u0002\u00ff' }), Buffer.from([0x02, 0xff]));
    assert.deepEqual(requestBytes({ requestHex: '534E3f' }), Buffer.from('SN?'));
  });

  test('showBytes: printable text, escapes for the rest, cut at 48 bytes', () => {
    assert.equal(showBytes(Buffer.from('ERR 42\r\n\x15"\\')), '"ERR 42\\r\\n\\x15\\"\\\\"');
    assert.equal(showBytes(Buffer.alloc(50, 0x41)), `"${'A'.repeat(48)}"... (50 bytes)`);
  });

  test('port locks: work on one port runs one at a time, in order; other ports are not held up', async () => {
    const locks = createPortLocks();
    const events: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = locks.run('/dev/a', async () => {
      events.push('a1 start');
      await gate;
      events.push('a1 end');
      return 1;
    });
    const second = locks.run('/dev/a', async () => {
      events.push('a2 start');
      throw new Error('a2 failed');
    });
    const third = locks.run('/dev/a', async () => (events.push('a3'), 3));
    const other = await locks.run('/dev/b', async () => (events.push('b'), 'b'));
    assert.equal(other, 'b');
    assert.deepEqual(events, ['a1 start', 'b']);
    release();
    assert.equal(await first, 1);
    await assert.rejects(second, /a2 failed/);
    assert.equal(await third, 3);
    assert.deepEqual(events, ['a1 start', 'b', 'a1 end', 'a2 start', 'a3']);
  });

  test('port locks: callers of an identical read share the one in progress; a later call starts a new one', async () => {
    const locks = createPortLocks();
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const read = () => locks.share('k', async () => (runs++, await gate, `v${runs}`));
    const a = read();
    const b = read();
    release();
    assert.deepEqual(await Promise.all([a, b]), ['v1', 'v1']);
    assert.equal(await read(), 'v2');
    assert.equal(runs, 2);
  });
});
