import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createIdentityReader } from '../../../src/identity/index.js';
import { profile, profileDir, SHIPPED_PROFILES, tree } from './helpers.js';

const detectShipped = async (root: string) =>
  (await createIdentityReader({ profileDirs: [SHIPPED_PROFILES], root }).detect()).matches.map((m) => m.profile);

describe('identity detect: which profiles fit this hardware', () => {
  test('an x86 PC with DMI data: generic-x86', async () => {
    assert.deepEqual(await detectShipped(tree('x86')), ['generic-x86']);
    assert.deepEqual(await detectShipped(tree('x86-placeholder')), ['generic-x86']);
  });

  test('a Raspberry Pi, its device tree under /proc or /sys: raspberry-pi', async () => {
    assert.deepEqual(await detectShipped(tree('pi')), ['raspberry-pi']);
    assert.deepEqual(await detectShipped(tree('pi-sysfs')), ['raspberry-pi']);
  });

  test('nothing recognisable: no match (manual and serial-fiscal-module have no match rules)', async () => {
    assert.deepEqual(await detectShipped(tree('files')), []);
  });

  test('every matching profile, most specific (most conditions) first; invalid files reported, not thrown', async () => {
    const { dir, remove } = profileDir({
      'lenovo-m70': profile('lenovo-m70', { posserial: { source: 'dmi', field: 'product_serial' } }, {
        description: 'Lenovo M70',
        match: [
          { source: 'file', path: '/sys/class/dmi/id' },
          { source: 'file', path: '/proc/cpuinfo', regex: '^vendor_id\\s*:\\s*GenuineIntel' },
          { source: 'dmi', field: 'sys_vendor', regex: '^LENOVO$' },
        ],
      }),
      'any-dmi': profile('any-dmi', { posserial: { source: 'dmi', field: 'product_serial' } }, {
        description: 'Anything with a DMI vendor',
        match: [{ source: 'dmi', field: 'sys_vendor' }],
      }),
      'hp-only': profile('hp-only', { posserial: { source: 'config' } }, { match: [{ source: 'dmi', field: 'sys_vendor', regex: '^HP' }] }),
      broken: '{"name": "broken"}',
    });
    try {
      const result = await createIdentityReader({ profileDirs: [dir, SHIPPED_PROFILES], root: tree('x86') }).detect();
      assert.deepEqual(result.matches, [
        { profile: 'lenovo-m70', description: 'Lenovo M70', conditions: 3 },
        { profile: 'generic-x86', description: 'x86 PC or POS terminal with SMBIOS firmware data: serial from DMI, OS from os-release', conditions: 2 },
        { profile: 'any-dmi', description: 'Anything with a DMI vendor', conditions: 1 },
      ]);
      assert.equal(result.invalid.length, 1);
      assert.match(result.invalid[0]!.file, /broken\.json$/);
      assert.deepEqual(result.invalid[0]!.problems, ['description: expected string (missing)', 'values: expected object (missing)']);
    } finally {
      remove();
    }
  });

  test('a DMI condition without regex needs a non-empty field', async () => {
    const { dir, remove } = profileDir({
      uuid: profile('uuid', { posserial: { source: 'config' } }, { match: [{ source: 'dmi', field: 'product_uuid' }] }),
    });
    try {
      assert.deepEqual((await createIdentityReader({ profileDirs: [dir], root: tree('x86') }).detect()).matches, []);
    } finally {
      remove();
    }
  });
});
