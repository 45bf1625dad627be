/**
 * The soak's decisions, as pure functions (test/reliability/soak.test.ts measures, these judge; test/unit/soak.test.ts
 * tests them with tables): is a series of samples climbing, how fast, and which node flags the systemd unit runs the
 * agent with.
 */

/** One reading: seconds since the soak started, and the figure. */
export interface Sample {
  tS: number;
  value: number;
}

/** The least-squares slope of the samples, in units per hour (0 with fewer than two distinct times). */
export function slopePerHour(samples: readonly Sample[]): number {
  const n = samples.length;
  if (n < 2) return 0;
  let st = 0;
  let sv = 0;
  for (const s of samples) {
    st += s.tS;
    sv += s.value;
  }
  const mt = st / n;
  const mv = sv / n;
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.tS - mt) * (s.value - mv);
    den += (s.tS - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 3600;
}

export interface Trend {
  n: number;
  first: number;
  last: number;
  min: number;
  max: number;
  /** Least squares over the samples, units per hour. */
  slopePerHour: number;
  /** Least squares over the second half of the samples only, units per hour. */
  lastHalfSlopePerHour: number;
  /** The medians of the first and the last third of the samples. */
  firstThirdMedian: number;
  lastThirdMedian: number;
  /** A steady climb: see `trend`. */
  climbing: boolean;
}

/** The fewest samples a climb is judged on: three in each third. */
export const MIN_TREND_SAMPLES = 9;

function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * A series climbs steadily when all three hold:
 * - its least-squares slope is above `maxSlopePerHour`;
 * - so is the slope of its second half alone: growth that slows down as it nears a bound (V8's old space filling
 *   towards its cap, SQLite's page cache towards cache_size, the allocator's arenas) is steep over the whole of a
 *   short soak but level at its end, where a leak keeps its pace;
 * - the last third's median is above the first third's by at least half of what that slope would add between them:
 *   one late spike (a major collection that came late, a burst of connections) pulls both slopes up but moves no
 *   median, and a noisy series whose slope is mostly noise does not rise between its thirds.
 * A series shorter than MIN_TREND_SAMPLES is never judged climbing (the caller asserts it has enough samples).
 */
export function trend(samples: readonly Sample[], maxSlopePerHour: number): Trend {
  const n = samples.length;
  const values = samples.map((s) => s.value);
  const third = Math.floor(n / 3);
  const firstThirdMedian = median(values.slice(0, third));
  const lastThirdMedian = median(values.slice(n - third));
  const slope = slopePerHour(samples);
  const lastHalfSlope = slopePerHour(samples.slice(Math.floor(n / 2)));
  // The time between the middles of the two thirds, in hours.
  const apartH = third > 0 ? (median(samples.slice(n - third).map((s) => s.tS)) - median(samples.slice(0, third).map((s) => s.tS))) / 3600 : 0;
  const risen = lastThirdMedian - firstThirdMedian > (maxSlopePerHour * apartH) / 2;
  return {
    n,
    first: values[0] ?? NaN,
    last: values[n - 1] ?? NaN,
    min: n ? Math.min(...values) : NaN,
    max: n ? Math.max(...values) : NaN,
    slopePerHour: slope,
    lastHalfSlopePerHour: lastHalfSlope,
    firstThirdMedian,
    lastThirdMedian,
    climbing: n >= MIN_TREND_SAMPLES && slope > maxSlopePerHour && lastHalfSlope > maxSlopePerHour && risen,
  };
}

/** What a systemd unit runs node with: the flags between the node binary and the script, and its NODE_ environment. */
export interface UnitNode {
  flags: string[];
  /** Environment= assignments of NODE_ENV and NODE_OPTIONS (the others name paths on the box). */
  env: Record<string, string>;
  /** The unit has CacheDirectory= (systemd then sets $CACHE_DIRECTORY, where the agent keeps Node's compile cache). */
  cacheDirectory: boolean;
}

/** Splits a systemd command line into words: whitespace-separated, "double" or 'single' quotes kept together. */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

/**
 * The node flags of the unit's ExecStart= (`/usr/bin/node FLAGS... /opt/.../dist/cli/main.js run`), its NODE_ENV /
 * NODE_OPTIONS, and whether it has a CacheDirectory=. Throws, naming the line, when ExecStart= does not run dist/cli/main.js with node.
 */
export function unitNode(unitText: string): UnitNode {
  const lines = unitText.split('\n').map((l) => l.trim());
  const exec = lines.find((l) => l.startsWith('ExecStart='));
  if (!exec) throw new Error('the unit has no ExecStart= line');
  // A leading prefix (-, @, +, !, :) changes how systemd runs it, not the command.
  const argv = words(exec.slice('ExecStart='.length).replace(/^[-@+!:]+/, ''));
  const script = argv.findIndex((w) => w.endsWith('/dist/cli/main.js'));
  if (script < 1 || !/(^|\/)node$/.test(argv[0]!)) throw new Error(`ExecStart= does not run dist/cli/main.js with node: ${exec}`);
  const env: Record<string, string> = {};
  for (const line of lines.filter((l) => l.startsWith('Environment='))) {
    for (const w of words(line.slice('Environment='.length))) {
      const m = /^(NODE_ENV|NODE_OPTIONS)=(.*)$/s.exec(w);
      if (m) env[m[1]!] = m[2]!;
    }
  }
  return { flags: argv.slice(1, script), env, cacheDirectory: lines.some((l) => /^CacheDirectory=\S/.test(l)) };
}
