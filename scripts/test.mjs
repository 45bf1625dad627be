#!/usr/bin/env node
// Runs the test files with Node's own runner through tsx. Node 20 takes no globs, so the
// files are listed here: test/unit/**.test.ts, then test/integration/**.test.ts.
// `reliability` (test/reliability/**.test.ts: kill -9 cycles, authority faults, clock jumps, socket abuse, the soak) runs
// only when named, one file at a time: its tests measure timing and memory, which a neighbour would disturb.
// `system` (test/system/**.test.ts: the built packages under a booted systemd in systemd-nspawn, and the arm64
// package under qemu; needs root and `npm run package` first) also runs only when named, one file at a time.
// Usage: node scripts/test.mjs [unit|integration|reliability|system] [extra node --test flags]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const suites = ['unit', 'integration'];
const selections = [...suites, 'reliability', 'system'];
const named = selections.includes(process.argv[2]);
const pick = named ? [process.argv[2]] : suites;
const extra = process.argv.slice(named ? 3 : 2);
const alone = pick.includes('reliability') || pick.includes('system');
const concurrency = alone ? 1 : 2;
// A test file that hangs fails after this long instead of holding CI until its limit (Node 20 applies
// --test-timeout to each file as a whole). Far above the slowest file of each kind seen here: all of unit and
// integration take about 90 s; reliability's kill -9 file about 150 s, its soak SOAK_S (600 by default) plus
// about a minute, so a reliability file gets 15 minutes or SOAK_S plus 5 minutes, whichever is longer. A system
// file may first make a Debian root with debootstrap and build the previous version's package (minutes, cached
// afterwards), hence 40 min.
const soakS = Number(process.env.SOAK_S) || 0;
const reliabilityMs = Math.max(900_000, (soakS + 300) * 1000);
const timeoutMs = pick.includes('system') ? 2_400_000 : pick.includes('reliability') ? reliabilityMs : 600_000;

function find(dir) {
  let out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(find(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const files = pick.flatMap((s) => find(join('test', s)));
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
// The runner's own summary, as TAP, goes to a file beside what it prints: on Node 24.22 a whole `npm test` once
// exited 0 with "fail 1" in its summary (a spawn's unhandled 'error' event in a test). The counts decide too.
const summaryDir = mkdtempSync(join(tmpdir(), 'pta-test-'));
const summary = join(summaryDir, 'summary.tap');
const shown = Number(process.versions.node.split('.')[0]) >= 23 ? 'spec' : 'tap'; // each version's default
const reporters = extra.some((a) => a.startsWith('--test-reporter'))
  ? []
  : [`--test-reporter=${shown}`, '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${summary}`];
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', ...reporters, `--test-concurrency=${concurrency}`, `--test-timeout=${timeoutMs}`, ...extra, ...files], {
  stdio: 'inherit',
});
const failed = reporters.length > 0 ? failedCount(summary) : 0;
rmSync(summaryDir, { recursive: true, force: true });
if (r.status === 0 && failed !== 0) {
  console.error(`the test runner exited 0, but its summary counts ${failed === null ? 'no result' : `${failed} failed`}: failing`);
  process.exit(1);
}
process.exit(r.status ?? 1);

/** The `# fail N` of the runner's TAP summary; null when there is none (the runner died before it). */
function failedCount(file) {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const m = /^# fail (\d+)$/m.exec(text.split('\n').slice(-12).join('\n'));
  return m ? Number(m[1]) : null;
}
