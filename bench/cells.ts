/**
 * Running the load generator (bench/loadgen.ts, always its own process on the machine's node) from the bench: a
 * compare cell, with the servers' CPU per target, their memory peaks (smaps_rollup) and their collections (their
 * `--trace-gc` logs) over the measured window; and a cold burst.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { cpuMs, gcLogMark, gcSince, machineBusyMs, type GcCounts, type Smaps } from './lib.js';
import type { BurstResult, BurstSpec, CompareResult, CompareSpec, TargetFigures } from './loadgen.js';
import { CHILD_ENV, now, PeakSampler, ROOT } from './proc.js';

const LOADGEN = join(ROOT, 'bench', 'loadgen.ts');

/** A server process watched during a cell: its CPU per target's slices, its memory peak, its collections if traced. */
export interface Watched {
  pid: number;
  gcLog?: string;
}

/** A target's figures plus the CPU each watched process used during its slices, as a share of one core. */
export interface SampledFigures extends TargetFigures {
  cpu: number[];
}

export interface CompareRun {
  targets: SampledFigures[];
  /** CPU every other process on the machine used meanwhile, in cores. */
  otherCpu: number;
  /** Per watched process: each smaps field's peak over the measured window. */
  peaks: Array<Smaps | undefined>;
  /** Per watched process: the collections it logged during the measured window (undefined when not traced). */
  gc: Array<GcCounts | undefined>;
}

function generator(spec: CompareSpec | BurstSpec): ReturnType<typeof spawn> {
  return spawn(process.execPath, ['--import', 'tsx', LOADGEN, JSON.stringify(spec)], {
    env: CHILD_ENV,
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** Runs a compare spec (targets taking turns in slices) from a generator process, watching the servers. */
export function runCompare(spec: Omit<CompareSpec, 'samplePids' | 'kind'>, watched: Watched[]): Promise<CompareRun> {
  const pids = watched.map((w) => w.pid);
  const child = generator({ ...spec, kind: 'compare', samplePids: pids });
  const all = [...pids, child.pid!];
  return new Promise((resolvePromise, reject) => {
    let cpu0: number[] = [];
    let busy0 = 0;
    let self0 = process.cpuUsage();
    let t0 = 0;
    let marks: number[] = [];
    let sampler: PeakSampler | undefined;
    let result: CompareRun | undefined;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { event: string };
      if (msg.event === 'measuring') {
        marks = watched.map((w) => (w.gcLog !== undefined ? gcLogMark(w.gcLog) : 0));
        sampler = new PeakSampler(pids);
        cpu0 = all.map((p) => cpuMs(p) ?? 0);
        busy0 = machineBusyMs();
        self0 = process.cpuUsage();
        t0 = now();
      } else if (msg.event === 'result') {
        const elapsed = now() - t0;
        const used = all.map((p, i) => (cpuMs(p) ?? 0) - cpu0[i]!).reduce((a, b) => a + b, 0);
        const self = process.cpuUsage(self0);
        const others = machineBusyMs() - busy0 - used - (self.user + self.system) / 1e3;
        result = {
          targets: (msg as CompareResult).targets.map((t) => ({ ...t, cpu: (t.sampledCpuMs ?? []).map((ms) => ms / t.activeMs) })),
          otherCpu: Math.max(0, others / elapsed),
          peaks: sampler?.stop() ?? [],
          gc: watched.map((w, i) => (w.gcLog !== undefined ? gcSince(w.gcLog, marks[i]!) : undefined)),
        };
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      sampler?.stop();
      if (result) resolvePromise(result);
      else reject(new Error(`the load generator exited ${code} without a result`));
    });
  });
}

/** A burst from a generator process: `started` once it polls the socket, `done` with the answers. */
export function runBurst(spec: Omit<BurstSpec, 'kind'>): { started: Promise<void>; done: Promise<BurstResult> } {
  const child = generator({ kind: 'burst', ...spec });
  let onStarted: () => void = () => {};
  const started = new Promise<void>((r) => (onStarted = r));
  const done = new Promise<BurstResult>((resolvePromise, reject) => {
    let result: BurstResult | undefined;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { event: string };
      if (msg.event === 'waiting') onStarted();
      if (msg.event === 'result') result = msg as BurstResult;
    });
    child.on('error', reject);
    child.on('exit', (code) => (result ? resolvePromise(result) : reject(new Error(`the burst exited ${code} without a result`))));
  });
  return { started, done };
}
