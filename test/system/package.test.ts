/**
 * The packages `npm run package` put in release/: what the .deb declares and holds, lintian, the tarball
 * through install.sh, and that the same commit builds byte-identical packages again (a second build, with
 * better-sqlite3 compiled again rather than taken from the build cache).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';

const REPO = resolve(import.meta.dirname, '../..');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const RUNTIME = (JSON.parse(readFileSync(join(REPO, 'scripts/node-runtime.json'), 'utf8')) as { version: string }).version;
const RELEASE = join(REPO, 'release');
const ARCHES = ['amd64', 'arm64'] as const;
const deb = (arch: string, dir = RELEASE) => join(dir, `pos-token-agent_${VERSION}_${arch}.deb`);
const tarball = (arch: string, dir = RELEASE) => join(dir, `pos-token-agent-${VERSION}-linux-${arch}.tar.gz`);
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const built = ARCHES.every((a) => existsSync(deb(a)) && existsSync(tarball(a)));
const skip = !built ? `release/ has no ${VERSION} packages: run npm run package first` : false;

function sh(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, timeout: options.timeout ?? 120_000, ...options });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

describe('the .deb packages', { skip }, () => {
  for (const arch of ARCHES) {
    it(`${arch}: control fields, Depends only on what a minimal Debian has, no Node.js`, () => {
      const field = (name: string) => sh('dpkg-deb', ['-f', deb(arch), name]).trim();
      assert.equal(field('Package'), 'pos-token-agent');
      assert.equal(field('Version'), VERSION);
      assert.equal(field('Architecture'), arch);
      const depends = field('Depends').split(/,\s*/).map((d) => d.replace(/\s*\(.*\)$/, ''));
      assert.deepEqual(depends.sort(), ['libc6', 'libgcc-s1', 'libstdc++6', 'systemd']);
      // Ubuntu 22.04 has glibc 2.35 and libstdc++ from GCC 12; Debian 12 has 2.36 and GCC 12.
      const libc = /libc6 \(>= ([\d.]+)\)/.exec(field('Depends'))?.[1];
      assert.ok(libc && Number(libc.split('.')[1]) <= 35, `libc6 >= ${libc} is on Ubuntu 22.04`);
      const stdcxx = /libstdc\+\+6 \(>= ([\d.]+)\)/.exec(field('Depends'))?.[1];
      assert.ok(stdcxx && Number(stdcxx.split('.')[0]) <= 12, `libstdc++6 >= ${stdcxx} is on Ubuntu 22.04`);
      assert.doesNotMatch(sh('dpkg-deb', ['-I', deb(arch)]), /conffiles/, 'the config is managed by postinst, not a conffile');
    });

    it(`${arch}: holds the runtime, the program, the units, the snippets, the commands; all root's`, () => {
      const listing = sh('dpkg-deb', ['-c', deb(arch)]).split('\n').filter(Boolean);
      const paths = new Map(listing.map((l) => {
        const parts = l.split(/\s+/);
        return [parts.slice(5).join(' ').replace(/^\.\//, '/').replace(/ -> .*$/, ''), { mode: parts[0]!, owner: parts[1]! }];
      }));
      for (const p of [
        '/usr/lib/pos-token-agent/node/bin/node',
        '/usr/lib/pos-token-agent/dist/cli/main.js',
        '/usr/lib/pos-token-agent/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
        '/usr/lib/pos-token-agent/device-profiles/generic-x86.json',
        '/usr/lib/systemd/system/pos-token-agent.service',
        '/usr/lib/systemd/system/pos-token-agent.socket',
        '/usr/lib/sysusers.d/pos-token-agent.conf',
        '/usr/lib/tmpfiles.d/pos-token-agent.conf',
        '/usr/bin/pos-token-agent',
        '/usr/sbin/pos-token-agent-provision',
        '/usr/share/doc/pos-token-agent/copyright',
        '/usr/share/man/man1/pos-token-agent.1.gz',
      ]) {
        assert.ok(paths.has(p), `${p} in the package`);
      }
      assert.ok(![...paths.keys()].some((p) => /\/node_modules\/(typescript|tsx|esbuild|@types\/node|oidc-provider)\//.test(p)), 'no dev dependency');
      assert.ok(![...paths.keys()].some((p) => /\/node\/(include|lib\/node_modules\/npm)\//.test(p)), 'no headers, no npm');
      assert.ok([...paths.values()].every((v) => v.owner === 'root/root'), 'every entry root:root');
      assert.equal(paths.get('/usr/lib/pos-token-agent/node/bin/node')?.mode, '-rwxr-xr-x');
      assert.equal(paths.get('/usr/bin/pos-token-agent')?.mode, '-rwxr-xr-x');
    });
  }

  it('amd64: its units name the bundled runtime and pass systemd-analyze verify', { skip: !has('systemd-analyze') && 'no systemd-analyze' }, () => {
    const root = mkdtempSync(join(tmpdir(), 'pta-deb-'));
    try {
      sh('dpkg-deb', ['-x', deb('amd64'), root]);
      const unit = readFileSync(join(root, 'usr/lib/systemd/system/pos-token-agent.service'), 'utf8');
      assert.match(unit, /^ExecStart=\/usr\/lib\/pos-token-agent\/node\/bin\/node --max-semi-space-size=2 --max-old-space-size=64 \/usr\/lib\/pos-token-agent\/dist\/cli\/main\.js run$/m);
      assert.match(unit, /^ConfigurationDirectoryMode=0750$/m);
      assert.equal(readlinkSync(join(root, 'usr/sbin/pos-token-agent-provision')), '../lib/pos-token-agent/scripts/provision.sh');
      assert.equal(sh(join(root, 'usr/lib/pos-token-agent/node/bin/node'), ['--version']).trim(), `v${RUNTIME}`);
      // The program itself, on its own runtime and with its own modules only.
      const version = sh(join(root, 'usr/lib/pos-token-agent/node/bin/node'), [join(root, 'usr/lib/pos-token-agent/dist/cli/main.js'), '--version']);
      assert.equal(version.trim(), VERSION);
      // verify resolves ExecStart= on this machine: point it at the extracted tree.
      const units = join(root, 'units');
      mkdirSync(units);
      for (const u of ['pos-token-agent.service', 'pos-token-agent.socket']) {
        const text = readFileSync(join(root, 'usr/lib/systemd/system', u), 'utf8').replaceAll('/usr/lib/pos-token-agent', join(root, 'usr/lib/pos-token-agent'));
        writeFileSync(join(units, u), text);
      }
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', join(units, 'pos-token-agent.service'), join(units, 'pos-token-agent.socket')], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr.trim(), '', 'no warning');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('lintian: no error and no warning; what is overridden is listed in the package', { skip: !has('lintian') && 'lintian is not installed', timeout: 600_000 }, () => {
    for (const arch of ARCHES) {
      const r = spawnSync('lintian', ['--tag-display-limit', '0', '--fail-on', 'error,warning', deb(arch)], { encoding: 'utf8', timeout: 300_000 });
      const tags = r.stdout.split('\n').filter((l) => /^[EW]: /.test(l));
      assert.deepEqual(tags, [], `${arch}:\n${r.stdout}`);
      assert.equal(r.status, 0, r.stderr);
    }
  });
});

describe('the tarball and install.sh', { skip }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pta-tarball-'));
    sh('tar', ['xzf', tarball('amd64'), '-C', dir]);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('installs with its own runtime: the units and the command use it, not a node on PATH', () => {
    const src = join(dir, `pos-token-agent-${VERSION}-linux-amd64`);
    const root = join(dir, 'root');
    mkdirSync(root);
    // A node on PATH that must not be used: the release's own runtime is.
    const fake = join(dir, 'fakebin');
    mkdirSync(fake);
    writeFileSync(join(fake, 'node'), '#!/bin/sh\necho "the node on PATH was used" >&2\nexit 97\n');
    chmodSync(join(fake, 'node'), 0o755);
    const out = sh('bash', [join(src, 'scripts/install.sh'), '--root', root, '--no-users'], { env: { PATH: `${fake}:${process.env.PATH ?? '/usr/bin:/bin'}` } });
    assert.match(out, /installed pos-token-agent/);
    const prefix = join(root, 'opt/pos-token-agent');
    const unit = readFileSync(join(root, 'etc/systemd/system/pos-token-agent.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/opt\/pos-token-agent\/node\/bin\/node --max-semi-space-size=2 --max-old-space-size=64 \/opt\/pos-token-agent\/dist\/cli\/main\.js run$/m);
    assert.match(readFileSync(join(root, 'usr/local/bin/pos-token-agent'), 'utf8'), /^exec \/opt\/pos-token-agent\/node\/bin\/node /m);
    assert.equal(sh(join(prefix, 'node/bin/node'), [join(prefix, 'dist/cli/main.js'), '--version']).trim(), VERSION);
    assert.ok(statSync(join(prefix, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node')).isFile());
  });

  it('refuses, clearly, the release of another CPU', { skip: spawnSync('sh', ['-c', 'test -x /proc/sys/fs/binfmt_misc/qemu-aarch64']).status === 0 && 'qemu binfmt would run the arm64 runtime here' }, () => {
    sh('tar', ['xzf', tarball('arm64'), '-C', dir]);
    const src = join(dir, `pos-token-agent-${VERSION}-linux-arm64`);
    const root = join(dir, 'root-arm64');
    mkdirSync(root);
    const r = spawnSync('bash', [join(src, 'scripts/install.sh'), '--root', root, '--no-users'], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /does not run on this machine \(x86_64\).*arm64 for aarch64/);
    assert.ok(!existsSync(join(root, 'opt/pos-token-agent')), 'nothing installed');
  });
});

describe('reproducible: the same commit builds the same bytes', { skip }, () => {
  let out: string;
  before(() => {
    out = mkdtempSync(join(tmpdir(), 'pta-rebuild-'));
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  it('a second build, native modules compiled again, is byte-identical', { timeout: 1_800_000 }, () => {
    // Every timestamp is the commit's time: packages built before the last commit cannot match, and say so.
    const commit = Number(sh('git', ['-C', REPO, 'log', '-1', '--format=%ct']).trim());
    for (const arch of ARCHES) {
      const header = readFileSync(deb(arch)).subarray(8, 8 + 60).toString('latin1');
      const built = Number(header.slice(16, 28).trim());
      assert.equal(built, commit, `release/ holds a ${arch} package of another commit (${built}, HEAD ${commit}): npm run package again`);
    }
    const started = Date.now();
    sh(process.execPath, [join(REPO, 'scripts/package.mjs'), '--out', out, '--no-cache'], { timeout: 1_800_000 });
    for (const arch of ARCHES) {
      assert.equal(sha(deb(arch, out)), sha(deb(arch)), `${arch}.deb differs: diffoscope release/ and ${out}`);
      assert.equal(sha(tarball(arch, out)), sha(tarball(arch)), `${arch}.tar.gz differs`);
    }
    // Not a bound: the figure for the notes.
    console.log(`# rebuilt both arches in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  });
});
