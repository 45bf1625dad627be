import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { AccountConfig } from '../../../src/config/index.js';
import {
  createIdentityReader,
  isExpensive,
  type IdentityReaderOptions,
  type IdentityReading,
  type ReadOptions,
  type ValueSource,
} from '../../../src/identity/index.js';
import { account, profile, profileDir, SHIPPED_PROFILES, tree } from './helpers.js';

const GOOD_ID = '3f2c1d0e9b8a47c6a5d4e3f2c1b0a998';

/** Reads `acc` with the shipped profiles on a fixture tree. */
function readShipped(root: string, acc: AccountConfig, options: Partial<IdentityReaderOptions> = {}): Promise<IdentityReading> {
  return createIdentityReader({ profileDirs: [SHIPPED_PROFILES], root, env: {}, ...options }).read(acc);
}

describe('identity sources: the shipped profiles on fixture trees', () => {
  test('generic-x86: DMI product_serial, os-release NAME and VERSION_ID, static posmodelframework', async () => {
    const r = await readShipped(tree('x86'), account({ deviceProfile: 'generic-x86' }));
    assert.deepEqual(r, {
      profile: 'generic-x86',
      values: {
        posserial: { value: 'PF3XK2A9', source: 'dmi product_serial' },
        pososversion: { value: 'Debian GNU/Linux 12', source: 'os-release {NAME} {VERSION_ID}' },
        posmodelframework: { value: '1', source: 'static' },
      },
      errors: {},
      skipped: [],
    });
  });

  test('generic-x86: a placeholder product_serial falls back to board_serial; /usr/lib/os-release and PRETTY_NAME as fallbacks', async () => {
    const r = await readShipped(tree('x86-placeholder'), account({ deviceProfile: 'generic-x86' }));
    assert.deepEqual(r.values.posserial, { value: 'M80-C1234567', source: 'dmi board_serial' });
    assert.deepEqual(r.values.pososversion, { value: 'Arch Linux', source: 'os-release {PRETTY_NAME}' });
    assert.deepEqual(r.errors, {});
  });

  test('generic-x86: no usable DMI serial is an error saying why for each source tried', async () => {
    const r = await readShipped(tree('x86-noserial'), account({ deviceProfile: 'generic-x86' }));
    assert.equal(r.values.posserial, undefined);
    assert.equal(
      r.errors.posserial,
      'dmi product_serial: holds the placeholder "Default string"; ' +
        'dmi board_serial: cannot read /sys/class/dmi/id/board_serial: not found',
    );
    assert.deepEqual(r.values.pososversion, { value: 'Ubuntu 22.04', source: 'os-release {NAME} {VERSION_ID}' });
  });

  test('raspberry-pi: serial-number from /proc/device-tree with its trailing NUL stripped', async () => {
    const r = await readShipped(tree('pi'), account({ deviceProfile: 'raspberry-pi' }));
    assert.deepEqual(r.values, {
      posserial: { value: '10000000abcdef01', source: 'devicetree serial-number' },
      pososversion: { value: 'Raspbian GNU/Linux 11', source: 'os-release {NAME} {VERSION_ID}' },
      posmodelframework: { value: '1', source: 'static' },
    });
  });

  test('raspberry-pi: the device tree under /sys/firmware/devicetree/base when /proc/device-tree is absent', async () => {
    const r = await readShipped(tree('pi-sysfs'), account({ deviceProfile: 'raspberry-pi' }));
    assert.deepEqual(r.values.posserial, { value: '00000000c0ffee42', source: 'devicetree serial-number' });
  });

  test('raspberry-pi: without serial-number in the device tree, the Serial line of /proc/cpuinfo', async () => {
    const r = await readShipped(tree('pi-cpuinfo'), account({ deviceProfile: 'raspberry-pi' }));
    assert.deepEqual(r.values.posserial, { value: '00000000deadbeef', source: 'file /proc/cpuinfo' });
  });

  test('manual: every value from the config identity', async () => {
    const identity = { posserial: 'SN-1', pososversion: 'Windows 10', posmodelframework: '4.8' };
    const r = await readShipped(tree('files'), account({ deviceProfile: 'manual', identity }));
    assert.deepEqual(r.values, {
      posserial: { value: 'SN-1', source: 'config identity.posserial' },
      pososversion: { value: 'Windows 10', source: 'config identity.pososversion' },
      posmodelframework: { value: '4.8', source: 'config identity.posmodelframework' },
    });
    assert.deepEqual(r.errors, {});
  });

  test('manual: a value missing from the config is an error naming the config key', async () => {
    const r = await readShipped(tree('files'), account({ deviceProfile: 'manual', identity: { posserial: 'SN-1' } }));
    assert.deepEqual(r.errors, {
      pososversion: 'config identity.pososversion: accounts.main.identity.pososversion is not set in the config',
      posmodelframework: 'config identity.posmodelframework: accounts.main.identity.posmodelframework is not set in the config',
    });
  });

  test('config identity values override the profile, field by field', async () => {
    const r = await readShipped(tree('x86'), account({ deviceProfile: 'generic-x86', identity: { posserial: 'REGISTERED-7' } }));
    assert.deepEqual(r.values.posserial, { value: 'REGISTERED-7', source: 'config identity.posserial' });
    assert.deepEqual(r.values.pososversion, { value: 'Debian GNU/Linux 12', source: 'os-release {NAME} {VERSION_ID}' });
  });

  test('an account without deviceProfile reads only its config identity', async () => {
    const r = await readShipped(tree('x86'), account({ identity: { posserial: 'ONLY-CONFIG' } }));
    assert.deepEqual(r, {
      profile: null,
      values: { posserial: { value: 'ONLY-CONFIG', source: 'config identity.posserial' } },
      errors: {},
      skipped: [],
    });
  });

  test('read(account, { profile }) reads with another profile than the account\'s', async () => {
    const reader = createIdentityReader({ profileDirs: [SHIPPED_PROFILES], root: tree('pi'), env: {} });
    const r = await reader.read(account({ deviceProfile: 'generic-x86' }), { profile: 'raspberry-pi' });
    assert.equal(r.profile, 'raspberry-pi');
    assert.equal(r.values.posserial?.value, '10000000abcdef01');
  });
});

describe('identity sources: each kind, on the files fixture tree', () => {
  let dir: string;
  let remove: () => void;
  let count = 0;
  const env = { POS_SERIAL: ' ENV-42 ', EMPTY: '' };

  /** Writes a profile whose fields are `values` and returns its name. */
  function write(values: Record<string, unknown>): string {
    const name = `t${++count}`;
    writeFileSync(join(dir, `${name}.json`), JSON.stringify(profile(name, values)));
    return name;
  }

  /** Reads an account with a profile whose fields are `values`, on the files tree. */
  function read(values: Record<string, unknown>, options: Partial<IdentityReaderOptions> = {}, readOptions: ReadOptions = {}) {
    return createIdentityReader({ profileDirs: [dir], root: tree('files'), env, ...options }).read(
      account({ deviceProfile: write(values) }),
      readOptions,
    );
  }

  before(() => ({ dir, remove } = profileDir({})));
  after(() => remove());

  test('file: a capture group of a regex (multiline)', async () => {
    const r = await read({ posserial: { source: 'file', path: '/etc/pos/terminal.conf', regex: '^serial\\s*=\\s*(\\S+)$' } });
    assert.deepEqual(r.values.posserial, { value: 'ABC-123-XYZ', source: 'file /etc/pos/terminal.conf' });
  });

  test('file: the whole content, trimmed', async () => {
    const r = await read({ posmodelframework: { source: 'file', path: '/etc/pos/framework' } });
    assert.deepEqual(r.values.posmodelframework, { value: '2.1', source: 'file /etc/pos/framework' });
  });

  test('file: a regex that does not match, a missing file and a blank file each fall through to the next source', async () => {
    const r = await read({
      posserial: [
        { source: 'file', path: '/etc/pos/terminal.conf', regex: '^imei=(\\d+)' },
        { source: 'file', path: '/etc/pos/none' },
        { source: 'file', path: '/etc/pos/blank' },
        { source: 'static', value: 'LAST' },
      ],
    });
    assert.deepEqual(r.values.posserial, { value: 'LAST', source: 'static' });
  });

  test('file: why each source yielded nothing', async () => {
    const r = await read({
      posserial: [
        { source: 'file', path: '/etc/pos/terminal.conf', regex: '^imei=(\\d+)' },
        { source: 'file', path: '/etc/pos/none' },
        { source: 'file', path: '/etc/pos/blank' },
      ],
    });
    assert.equal(
      r.errors.posserial,
      'file /etc/pos/terminal.conf: /etc/pos/terminal.conf does not match /^imei=(\\d+)/; ' +
        'file /etc/pos/none: cannot read /etc/pos/none: not found; file /etc/pos/blank: empty value',
    );
  });

  test('a value over the header limit is an error naming the limit, never truncated, and does not fall through', async () => {
    const r = await read({ posserial: [{ source: 'file', path: '/etc/pos/long' }, { source: 'static', value: 'NOT-USED' }] });
    assert.equal(r.values.posserial, undefined);
    assert.equal(
      r.errors.posserial,
      'file /etc/pos/long: value is 101 characters; the posserial header takes at most 100 (not truncated)',
    );
  });

  test('the same value fits a header with a higher limit', async () => {
    const r = await read({ pososversion: { source: 'file', path: '/etc/pos/terminal.conf', regex: '^model = (.*)$' } });
    assert.equal(r.values.pososversion?.value, 'TX-200');
  });

  test('non-printable-ASCII values are errors naming the character', async () => {
    const r = await read({
      posserial: { source: 'file', path: '/etc/pos/nonascii' },
      pososversion: { source: 'file', path: '/etc/pos/control' },
    });
    assert.equal(
      r.errors.posserial,
      'file /etc/pos/nonascii: value has a character outside printable ASCII (U+00E9 at position 4); the posserial header takes printable ASCII only',
    );
    assert.equal(
      r.errors.pososversion,
      'file /etc/pos/control: value has a character outside printable ASCII (U+0009 at position 3); the pososversion header takes printable ASCII only',
    );
  });

  test('env: set (trimmed), unset, empty', async () => {
    const r = await read({
      posserial: { source: 'env', name: 'POS_SERIAL' },
      pososversion: [{ source: 'env', name: 'NOPE' }, { source: 'env', name: 'EMPTY' }],
    });
    assert.deepEqual(r.values.posserial, { value: 'ENV-42', source: 'env POS_SERIAL' });
    assert.equal(r.errors.pososversion, 'env NOPE: NOPE is not set; env EMPTY: empty value');
  });

  test('static', async () => {
    const r = await read({ posmodelframework: { source: 'static', value: ' 1.0 ' } });
    assert.deepEqual(r.values.posmodelframework, { value: '1.0', source: 'static' });
  });

  test('dmi and devicetree read under the root too (absent here)', async () => {
    const r = await read({ posserial: [{ source: 'dmi', field: 'product_uuid' }, { source: 'devicetree', property: 'serial-number' }] });
    assert.equal(
      r.errors.posserial,
      'dmi product_uuid: cannot read /sys/class/dmi/id/product_uuid: not found; devicetree serial-number: ' +
        'cannot read /proc/device-tree/serial-number: not found; cannot read /sys/firmware/devicetree/base/serial-number: not found',
    );
  });

  test('os-release: a missing file and a missing field', async () => {
    const noFile = await read({ pososversion: { source: 'os-release', template: '{NAME}' } });
    assert.equal(
      noFile.errors.pososversion,
      'os-release {NAME}: cannot read /etc/os-release: not found; cannot read /usr/lib/os-release: not found',
    );
    const r = await createIdentityReader({ profileDirs: [SHIPPED_PROFILES], root: tree('x86'), env: {} }).read(account({ deviceProfile: 'generic-x86' }));
    assert.equal(r.values.pososversion?.value, 'Debian GNU/Linux 12');
  });

  describe('machine-id, read through an injected function', () => {
    const hostname = () => 'POS-Box-1';
    const cases: Array<[string, () => Promise<string>, { value?: string; error?: string }]> = [
      ['a good id', async () => GOOD_ID, { value: GOOD_ID }],
      ['a good id with a trailing newline', async () => `${GOOD_ID}\n`, { value: GOOD_ID }],
      ['an empty id', async () => '', { error: 'machine-id: the machine id is empty' }],
      ['"uninitialized" (first boot)', async () => 'uninitialized', { error: 'machine-id: the machine id is "uninitialized" (not yet committed on first boot)' }],
      ['the hostname fallback of node-machine-id', async () => 'pos-box-1', { error: 'machine-id: no machine id file: the value is the hostname (node-machine-id falls back to it)' }],
      ['anything not 32 hex digits', async () => 'localhost.localdomain', { error: 'machine-id: the machine id "localhost.localdomain" is not 32 hex digits (a hostname fallback?)' }],
      ['a failing read', async () => Promise.reject(new Error('Error while obtaining machine id: boom\n  at x')), { error: 'machine-id: cannot read the machine id: Error while obtaining machine id: boom' }],
    ];
    for (const [what, machineId, expected] of cases) {
      test(what, async () => {
        const r = await read({ posserial: { source: 'machine-id' } }, { machineId, hostname });
        if (expected.value !== undefined) assert.deepEqual(r.values.posserial, { value: expected.value, source: 'machine-id' });
        else assert.equal(r.errors.posserial, expected.error);
      });
    }

    test('a refused id falls through to the next source', async () => {
      const r = await read({ posserial: [{ source: 'machine-id' }, { source: 'env', name: 'POS_SERIAL' }] }, { machineId: async () => 'uninitialized', hostname });
      assert.deepEqual(r.values.posserial, { value: 'ENV-42', source: 'env POS_SERIAL' });
    });
  });

  describe('cheap and expensive sources', () => {
    const port = { source: 'serialport', path: '/nonexistent/ttyX', baudRate: 9600, request: 'SN?\r\n', response: '^SN=(.*)$', timeoutMs: 50, retries: 0 };

    test('with cheapOnly, a field whose next source is a serial query is skipped, not failed', async () => {
      const r = await read(
        { posserial: [{ source: 'env', name: 'NOPE' }, port, { source: 'static', value: 'AFTER' }], pososversion: { source: 'static', value: 'os' } },
        {},
        { cheapOnly: true },
      );
      assert.deepEqual(r.skipped, ['posserial']);
      assert.equal(r.values.posserial, undefined);
      assert.equal(r.errors.posserial, undefined);
      assert.deepEqual(r.values.pososversion, { value: 'os', source: 'static' });
    });

    test('with cheapOnly, a cheap source before the serial query still wins', async () => {
      const r = await read({ posserial: [{ source: 'env', name: 'POS_SERIAL' }, port] }, {}, { cheapOnly: true });
      assert.deepEqual(r.skipped, []);
      assert.equal(r.values.posserial?.value, 'ENV-42');
    });

    test('serialport is the only expensive kind', () => {
      assert.equal(isExpensive(port as ValueSource), true);
      for (const source of [{ source: 'file', path: '/x' }, { source: 'dmi', field: 'x' }, { source: 'machine-id' }, { source: 'config' }]) {
        assert.equal(isExpensive(source as ValueSource), false);
      }
    });

    test('without cheapOnly the serial source is read (and fails here: no such port), then the next one', async () => {
      const r = await read({ posserial: [port, { source: 'static', value: 'AFTER' }] });
      assert.deepEqual(r.values.posserial, { value: 'AFTER', source: 'static' });
    });
  });
});
