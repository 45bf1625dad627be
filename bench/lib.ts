/**
 * Small helpers shared by the bench: percentiles, /proc readings, the machine, and a plain-text table.
 * No dependencies beyond Node.
 */
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem, availableParallelism } from 'node:os';

/** The p-th percentile (0..100) of sorted values, nearest-rank. */
export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/** Resident memory of a process in bytes (VmRSS), or undefined once it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

const CLOCK_TICKS_PER_S = 100; // USER_HZ on Linux

/** CPU time (user + system) a process has used so far, in ms; all its threads. */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at state (field 3).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return ((utime + stime) * 1000) / CLOCK_TICKS_PER_S;
  } catch {
    return undefined;
  }
}

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  kernel: string;
  memoryGiB: number;
}

export function machine(): Machine {
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    node: process.version,
    kernel: release(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  };
}

/** Renders rows as an aligned text table; numbers are right-aligned. */
export function table(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.every((r) => typeof r[i] === 'number' || /^[\d.,%x×+? -]+$/.test(String(r[i] ?? ''))));
  const line = (r: string[]): string =>
    r.map((c, i) => (numeric[i] && i > 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export const mib = (bytes: number | undefined): string => (bytes === undefined ? '?' : (bytes / 2 ** 20).toFixed(1));

export const fixed = (n: number | undefined, digits = 2): string =>
  n === undefined || Number.isNaN(n) ? '?' : n.toFixed(digits);

export function sleepMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** CPU time the whole machine has been busy (all cores, not idle or waiting for I/O), in ms. */
export function machineBusyMs(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu;
  return ((user + nice + system + irq + softirq + steal) * 1000) / CLOCK_TICKS_PER_S;
}

/** The file system holding `path`: type and device of the longest mount point above it (Linux), or `unknown`. */
export function fileSystemOf(path: string): string {
  try {
    let best: { mount: string; text: string } | undefined;
    for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
      const [device, mount, type] = line.split(' ');
      if (!device || !mount || !type) continue;
      const under = mount === '/' || path === mount || path.startsWith(`${mount}/`);
      if (under && (!best || mount.length > best.mount.length)) best = { mount, text: `${type} on ${device}, mounted at ${mount}` };
    }
    return best?.text ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

// ---- memory: /proc/PID/smaps_rollup -------------------------------------------------------------

/** What the bench reports of a process's memory, from /proc/PID/smaps_rollup; bytes. */
export interface Smaps {
  rss: number;
  /** Proportional set size: each shared page divided among the processes mapping it. */
  pss: number;
  /** Private_Clean + Private_Dirty: pages no other process maps (file pages too, when nothing else maps the file). */
  private: number;
  privateDirty: number;
  /** Anonymous pages: heaps, stacks, V8's spaces. */
  anonymous: number;
  /** Rss - Anonymous: pages of files (the node binary, shared libraries, native addons). */
  fileBacked: number;
  /** Pss_File, when the kernel reports it (Linux 5.13 and later). */
  pssFile?: number;
}

export const SMAPS_FIELDS = ['rss', 'pss', 'private', 'anonymous', 'fileBacked'] as const;

/** Parses smaps_rollup's text ("Name:   1234 kB" lines); throws naming a field the bench needs and did not find. */
export function parseSmapsRollup(text: string): Smaps {
  const bytes = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+) kB\s*$/.exec(line);
    if (m) bytes.set(m[1]!, Number(m[2]) * 1024);
  }
  const need = (name: string): number => {
    const v = bytes.get(name);
    if (v === undefined) throw new Error(`smaps_rollup has no ${name} line`);
    return v;
  };
  const rss = need('Rss');
  const anonymous = need('Anonymous');
  const privateDirty = need('Private_Dirty');
  const pssFile = bytes.get('Pss_File');
  return {
    rss,
    pss: need('Pss'),
    private: need('Private_Clean') + privateDirty,
    privateDirty,
    anonymous,
    fileBacked: rss - anonymous,
    ...(pssFile !== undefined ? { pssFile } : {}),
  };
}

/** A process's smaps_rollup, or undefined once it is gone (or on a kernel without the file: before 4.14). */
export function smapsRollup(pid: number): Smaps | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {
    return undefined;
  }
  return parseSmapsRollup(text);
}

/** Field by field, the larger of two readings (each field's own peak: they need not peak at the same moment). */
export function peakOf(a: Smaps | undefined, b: Smaps | undefined): Smaps | undefined {
  if (!a || !b) return a ?? b;
  const out: Smaps = { ...a };
  for (const k of [...SMAPS_FIELDS, 'privateDirty', 'pssFile'] as const) {
    const x = a[k];
    const y = b[k];
    if (x !== undefined || y !== undefined) out[k] = Math.max(x ?? 0, y ?? 0);
  }
  return out;
}

// ---- the systemd unit: how the shipped service runs node ---------------------------------------

/** How the unit runs the agent: its ExecStart split, and the NODE_* variables of its Environment= lines. */
export interface UnitRun {
  /** ExecStart's first word. */
  node: string;
  /** The words between the node binary and the script: the node flags the service runs with. */
  nodeFlags: string[];
  /** The script (the first word ending in .js, .mjs or .cjs) and what follows it. */
  script: string;
  args: string[];
  /** Environment= assignments of NODE_* variables (NODE_ENV, NODE_OPTIONS, ...). */
  env: Record<string, string>;
  /** CacheDirectory= (systemd then sets $CACHE_DIRECTORY), when the unit has one. */
  cacheDirectory?: string;
}

/** Splits a systemd command line or assignment list into words: whitespace apart, "..." and '...' quoted, \-escapes. */
export function systemdWords(text: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length) {
      word = (word ?? '') + text[++i];
    } else if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else word = (word ?? '') + c;
    } else if (c === '"' || c === "'") {
      quote = c;
      word ??= '';
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quote !== undefined) throw new Error(`unterminated ${quote} in: ${text}`);
  if (word !== undefined) words.push(word);
  return words;
}

/**
 * Reads a service unit's text: the last non-empty ExecStart= (its `-@:+!` prefixes dropped; lines ending in a
 * backslash continued), the NODE_* variables of Environment=, and CacheDirectory=.
 */
export function parseUnit(text: string): UnitRun {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim());
  let exec: string | undefined;
  const env: Record<string, string> = {};
  let cacheDirectory: string | undefined;
  for (const line of lines) {
    const m = /^(ExecStart|Environment|CacheDirectory)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    const value = m[2]!.trim();
    if (m[1] === 'ExecStart') exec = value === '' ? undefined : value;
    else if (m[1] === 'CacheDirectory') cacheDirectory = value === '' ? undefined : value;
    else {
      for (const assignment of systemdWords(value)) {
        const eq = assignment.indexOf('=');
        if (eq > 0 && assignment.startsWith('NODE_')) env[assignment.slice(0, eq)] = assignment.slice(eq + 1);
      }
    }
  }
  if (exec === undefined) throw new Error('the unit has no ExecStart= line');
  const words = systemdWords(exec.replace(/^[-@:+!]+/, ''));
  const at = words.findIndex((w, i) => i > 0 && /\.(m|c)?js$/.test(w));
  if (at < 0) throw new Error(`ExecStart= names no script (a word ending in .js): ${exec}`);
  return {
    node: words[0]!,
    nodeFlags: words.slice(1, at),
    script: words[at]!,
    args: words.slice(at + 1),
    env,
    ...(cacheDirectory !== undefined ? { cacheDirectory } : {}),
  };
}

// ---- collections: node --trace-gc ---------------------------------------------------------------

/** Garbage collections counted from `--trace-gc` lines. */
export interface GcCounts {
  /** Young-generation collections: Scavenge (and Minor Mark-Sweep, V8's alternative young collector). */
  young: number;
  /** Full collections: Mark-Compact (Mark-sweep in older V8s). */
  full: number;
  /** The pause of each, summed (the first of V8's "X / Y ms"), in ms. */
  pauseMs: number;
  /**
   * MB allocated between the collections: each one's heap size before it minus the previous one's after it (the
   * first counted only when the heap size after the collection before the text is given). Unlike the counts, it
   * does not depend on how large the young generation has grown.
   */
  allocatedMb: number;
  /** The heap size after the last collection in the text (MB), for the next text's first. */
  lastAfterMb?: number;
}

const GC_LINE =
  /\d+ ms: (Scavenge|Minor Mark-Sweep|Minor Mark-Compact|Mark-Compact|Mark-sweep)\b.*? ([\d.]+) \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/;

/** Counts the collections in `--trace-gc` output; other lines (the program's own output) are ignored. */
export function countGc(text: string, afterMb?: number): GcCounts {
  const counts: GcCounts = { young: 0, full: 0, pauseMs: 0, allocatedMb: 0 };
  let previous = afterMb;
  for (const line of text.split('\n')) {
    const m = GC_LINE.exec(line);
    if (!m) continue;
    if (m[1] === 'Mark-Compact' || m[1] === 'Mark-sweep') counts.full++;
    else counts.young++;
    counts.pauseMs += Number(m[4]);
    if (previous !== undefined) counts.allocatedMb += Math.max(0, Number(m[2]) - previous);
    previous = Number(m[3]);
  }
  if (previous !== undefined) counts.lastAfterMb = previous;
  return counts;
}

/** Per 10,000 requests (NaN without requests). */
export const perTenThousand = (n: number, requests: number): number => (requests > 0 ? (n * 10_000) / requests : NaN);

/** Where a growing `--trace-gc` log ends now: the byte offset after its last complete line. */
export function gcLogMark(path: string): number {
  try {
    return readFileSync(path).lastIndexOf(0x0a) + 1;
  } catch {
    return 0;
  }
}

/** The collections logged after `mark` (complete lines only); allocation counted from the last one before it. */
export function gcSince(path: string, mark: number): GcCounts {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch {
    return { young: 0, full: 0, pauseMs: 0, allocatedMb: 0 };
  }
  const before = countGc(text.subarray(0, mark).toString('utf8')).lastAfterMb;
  return countGc(text.subarray(mark, text.lastIndexOf(0x0a) + 1).toString('utf8'), before);
}
