import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  createIdentityReader,
  ProfileError,
  ProfileNotFoundError,
  profileJsonSchema,
} from '../../../src/identity/index.js';
import { profileDir, profile, SHIPPED_PROFILES } from './helpers.js';

const SCHEMA_FILE = join(SHIPPED_PROFILES, 'profile.schema.json');

/** Loads `body` as the profile file `<name>.json` and returns the ProfileError's problems. */
async function problemsOf(body: unknown, name = 'p'): Promise<string[]> {
  const { dir, remove } = profileDir({ [name]: body });
  try {
    await createIdentityReader({ profileDirs: [dir] }).loadProfile(name);
  } catch (err) {
    assert.ok(err instanceof ProfileError, `expected a ProfileError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_PROFILE');
    assert.equal(err.file, join(dir, `${name}.json`));
    assert.ok(err.message.includes(err.file), 'the message names the file');
    for (const p of err.problems) assert.ok(err.message.includes(p), `the message lists ${p}`);
    return err.problems;
  } finally {
    remove();
  }
  assert.fail('expected the profile to be refused');
}

const serial = (extra: Record<string, unknown> = {}) => ({
  source: 'serialport',
  path: '/dev/ttyUSB0',
  baudRate: 9600,
  request: 'SN?\r\n',
  response: '^SN=(.*)$',
  ...extra,
});

describe('device profiles: the shipped ones', () => {
  for (const name of ['generic-x86', 'raspberry-pi', 'serial-fiscal-module', 'manual']) {
    test(`${name} loads and is valid`, async () => {
      const p = await createIdentityReader({ profileDirs: [SHIPPED_PROFILES] }).loadProfile(name);
      assert.equal(p.name, name);
      assert.equal(p.file, join(SHIPPED_PROFILES, `${name}.json`));
      assert.ok(p.values.posserial?.length, 'every shipped profile says where posserial comes from');
    });
  }

  test('device-profiles/profile.schema.json is the JSON Schema generated from the zod schema', () => {
    const generated = `${JSON.stringify(profileJsonSchema(), null, 2)}\n`;
    if (process.env.UPDATE_PROFILE_SCHEMA === '1') writeFileSync(SCHEMA_FILE, generated);
    assert.equal(
      readFileSync(SCHEMA_FILE, 'utf8'),
      generated,
      'profile.schema.json is stale; regenerate it with: UPDATE_PROFILE_SCHEMA=1 node --import tsx --test test/unit/identity/profile.test.ts',
    );
  });

  test('the JSON Schema describes every source kind and refuses unknown keys', () => {
    const schema = profileJsonSchema() as { $defs: { source: { oneOf: Array<{ properties: { source: { const: string } }; additionalProperties: boolean }> } } };
    const kinds = schema.$defs.source.oneOf.map((s) => s.properties.source.const);
    assert.deepEqual(kinds, ['file', 'dmi', 'devicetree', 'os-release', 'machine-id', 'serialport', 'static', 'env', 'config']);
    for (const s of schema.$defs.source.oneOf) assert.equal(s.additionalProperties, false);
  });
});

describe('device profiles: validation errors name the file, the field path and what was expected', () => {
  const cases: Array<[string, unknown, string[]]> = [
    ['missing name and values', { description: 'x' }, ['name: expected string (missing)', 'values: expected object (missing)']],
    ['a misspelt top-level key', { ...profile('p', {}), valeus: {} }, ['(top level): unknown key "valeus"']],
    ['an unknown source kind', profile('p', { posserial: { source: 'bios', field: 'x' } }), [
      'values.posserial.source: expected one of "file", "dmi", "devicetree", "os-release", "machine-id", "serialport", "static", "env", "config" (got "bios")',
    ]],
    ['a source without "source"', profile('p', { posserial: { field: 'product_serial' } }), [
      'values.posserial.source: expected one of "file", "dmi", "devicetree", "os-release", "machine-id", "serialport", "static", "env", "config" (missing)',
    ]],
    ['a bad entry in a list of sources', profile('p', { posserial: [{ source: 'dmi', field: 'product_serial' }, { source: 'dmi', field: '../etc/shadow' }] }), [
      'values.posserial.1.field: expected a file name of /sys/class/dmi/id, such as "product_serial"',
    ]],
    ['an unknown key in a source', profile('p', { posserial: { source: 'dmi', field: 'product_serial', fallback: 'x' } }), [
      'values.posserial: unknown key "fallback"',
    ]],
    ['a number instead of a source', profile('p', { posserial: 3 }), [
      'values.posserial: expected a source object ({"source": ...}) or a list of them, got number 3',
    ]],
    ['an empty list of sources', profile('p', { posserial: [] }), ['values.posserial: expected at least one source']],
    ['an unknown field', profile('p', { serial: { source: 'static', value: '1' } }), ['values: unknown key "serial"']],
    ['a relative file path', profile('p', { posserial: { source: 'file', path: 'etc/serial' } }), [
      'values.posserial.path: expected an absolute path (starting with "/")',
    ]],
    ['a path with ".."', profile('p', { posserial: { source: 'file', path: '/etc/../root/serial' } }), [
      'values.posserial.path: expected a path without ".." segments',
    ]],
    ['a file regex without a capture group', profile('p', { posserial: { source: 'file', path: '/etc/x', regex: 'serial=\\w+' } }), [
      'values.posserial.regex: expected a regular expression with exactly one capture group (the value), found 0',
    ]],
    ['a file regex that does not compile', profile('p', { posserial: { source: 'file', path: '/etc/x', regex: 'serial=(\\w+' } }), [
      'values.posserial.regex: expected a valid regular expression: Invalid regular expression: /serial=(\\w+/m: Unterminated group',
    ]],
    ['an os-release template without a field', profile('p', { pososversion: { source: 'os-release', template: 'Linux' } }), [
      'values.pososversion.template: expected a template naming at least one os-release field, e.g. "{NAME} {VERSION_ID}"',
    ]],
    ['an env source with a bad variable name', profile('p', { posserial: { source: 'env', name: 'POS SERIAL' } }), [
      'values.posserial.name: expected an environment variable name',
    ]],
    ['a static value longer than its header', profile('p', { posmodelframework: { source: 'static', value: 'framework-11' } }), [
      'values.posmodelframework.value: expected at most 10 printable ASCII characters: value is 12 characters; the posmodelframework header takes at most 10 (not truncated)',
    ]],
    ['a static value with a control character, in a list', profile('p', { posserial: [{ source: 'env', name: 'S' }, { source: 'static', value: 'A\nB' }] }), [
      'values.posserial.1.value: expected at most 100 printable ASCII characters: value has a character outside printable ASCII (U+000A at position 2); the posserial header takes printable ASCII only',
    ]],
    ['a serial source with both request and requestHex', profile('p', { posserial: serial({ requestHex: '534e3f0d0a' }) }), [
      'values.posserial.request: expected exactly one of "request" and "requestHex"',
    ]],
    ['a serial source without a response regex or baud rate', profile('p', { posserial: serial({ response: undefined, baudRate: undefined }) }), [
      'values.posserial.baudRate: expected number (missing)',
      'values.posserial.response: expected string (missing)',
    ]],
    ['a serial response regex with two capture groups', profile('p', { posserial: serial({ response: '^(SN)=(.*)$' }) }), [
      'values.posserial.response: expected a regular expression with exactly one capture group (the value), found 2',
    ]],
    ['serial timing out of range', profile('p', { posserial: serial({ timeoutMs: 5, retries: 11, retryPauseMs: 1.5 }) }), [
      'values.posserial.timeoutMs: expected a number >= 10, got number 5',
      'values.posserial.retries: expected a number <= 10, got number 11',
      'values.posserial.retryPauseMs: expected an integer, got number 1.5',
    ]],
    ['serial settings of the wrong kind', profile('p', { posserial: serial({ parity: 'weird', dataBits: 9, requestHex: '5', request: undefined }) }), [
      'values.posserial.dataBits: expected 5 or 6 or 7 or 8, got number 9',
      'values.posserial.parity: expected "none" or "even" or "odd" or "mark" or "space", got string "weird"',
      'values.posserial.requestHex: expected an even number of hex digits, e.g. "534e3f0d0a"',
    ]],
    ['a request with a character that is not one byte', profile('p', { posserial: serial({ request: 'SN\u20ac' }) }), [
      'values.posserial.request: expected characters U+0000..U+00FF only (each is sent as one byte)',
    ]],
    ['a relative serial path', profile('p', { posserial: serial({ path: 'ttyUSB0' }) }), [
      'values.posserial.path: expected an absolute device path, e.g. "/dev/ttyUSB0" or "${POS_FISCAL_PORT:-/dev/ttyUSB0}"',
    ]],
    ['a bad match condition', profile('p', { posserial: { source: 'config' } }, { match: [{ source: 'dmi', field: 'sys_vendor', regex: '[' }, { source: 'env', name: 'X' }] }), [
      'match.0.regex: expected a valid regular expression: Invalid regular expression: /[/m: Unterminated character class',
      'match.1.source: expected one of "file", "dmi", "devicetree" (got "env")',
    ]],
    ['an empty description', { ...profile('p', {}), description: '' }, ['description: expected a non-empty description']],
  ];
  for (const [what, body, expected] of cases) {
    test(what, async () => assert.deepEqual(await problemsOf(body), expected));
  }

  test('the name inside must be the file name', async () => {
    assert.deepEqual(await problemsOf(profile('other', { posserial: { source: 'config' } }), 'mine'), [
      'name: expected "mine" (the file name), got "other"',
    ]);
  });

  test('a file that is not JSON', async () => {
    const [problem] = await problemsOf('{ "name": "p", }');
    assert.match(problem!, /^not valid JSON: /);
  });
});

describe('device profiles: lookup by name', () => {
  test('the first directory holding <name>.json wins; missing directories are skipped', async () => {
    const first = profileDir({ shared: profile('shared', { posserial: { source: 'static', value: 'FIRST' } }) });
    const second = profileDir({
      shared: profile('shared', { posserial: { source: 'static', value: 'SECOND' } }),
      only2: profile('only2', { posserial: { source: 'static', value: 'TWO' } }),
    });
    try {
      const reader = createIdentityReader({ profileDirs: ['/nonexistent/profiles', first.dir, second.dir] });
      assert.equal((await reader.loadProfile('shared')).file, join(first.dir, 'shared.json'));
      assert.equal((await reader.loadProfile('only2')).file, join(second.dir, 'only2.json'));
    } finally {
      first.remove();
      second.remove();
    }
  });

  test('an unknown name is refused naming the directories searched and the profiles there', async () => {
    const reader = createIdentityReader({ profileDirs: [SHIPPED_PROFILES, '/etc/nowhere'] });
    await assert.rejects(reader.loadProfile('generic-arm'), (err: unknown) => {
      assert.ok(err instanceof ProfileNotFoundError);
      assert.equal(err.code, 'ERR_PROFILE_NOT_FOUND');
      assert.equal(
        err.message,
        `no device profile named "generic-arm" in ${SHIPPED_PROFILES}, /etc/nowhere (available: generic-x86, manual, raspberry-pi, serial-fiscal-module)`,
      );
      return true;
    });
  });

  test('a name that is a path is not looked up (no traversal out of the directories)', async () => {
    const reader = createIdentityReader({ profileDirs: [SHIPPED_PROFILES] });
    await assert.rejects(reader.loadProfile('../device-profiles/manual'), ProfileNotFoundError);
    await assert.rejects(reader.loadProfile('profile.schema'), ProfileNotFoundError);
  });
});
