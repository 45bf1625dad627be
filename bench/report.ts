/**
 * The bench's report: per runtime, every section's table with each figure beside its baseline on the same runtime;
 * then the 24 simulated hours (runtime-independent), and the targets with a column per runtime.
 */
import { relative } from 'node:path';
import { API_BODY, API_PATH, type BeyondFigures, type ProxyRow } from './beyond.js';
import type { DayResult } from './day.js';
import { fixed, machine, median, mib, peakOf, perTenThousand, table, type GcCounts, type Smaps } from './lib.js';
import { ROOT, TOKEN_PATH } from './proc.js';
import { COLD_LOGIN_LATENCY_MS, type BurstRow, type CellName, type MemoryFigures, type ServingRow, type Settings, type StartFigures } from './sections.js';

/** The issue's targets (issue 22), and the earlier ones kept. */
export const TARGETS = {
  servingRatio8: 0.9,
  p99OneConnMs: 1,
  /** Start to ready, as a multiple of a bare `node -e ''` on the same runtime. */
  startRatio: 1.5,
  idleRssMiB: 64,
  /** Idle private memory over a bare idle node's. */
  idleOverBareMiB: 16,
  afterLoginRssMiB: 72,
  /** The soak's bound (issue 22 item 5, an hour of mixed traffic); here over the bench's short load cells. */
  peakRssMiB: 96,
  coldLogins: 1,
  loginsPerDay: 40,
  proxyAddedP50Ms: 0.5,
  proxyAddedP99Ms: 1,
  proxyVsBareProxy8: 0.9,
  outboxEnqueuesPerS16: 2_000,
};

export interface RuntimeFigures {
  runtime: { name: string; node: string; version: string; cli: string; source: string };
  nodeFlags: string[];
  flagsFrom: string;
  env: Record<string, string>;
  cacheDirectory?: string;
  starts: StartFigures;
  memory: MemoryFigures;
  serving: ServingRow[];
  loginsWhileServing: number;
  bursts: BurstRow[];
  beyond: BeyondFigures;
  seconds: number;
}

export interface BenchFigures {
  machine: ReturnType<typeof machine>;
  settings: Settings & { outboxN: number };
  loadBefore: number;
  loadAfter: number;
  runtimes: RuntimeFigures[];
  days: Array<DayResult & { seed: number }>;
  seconds: number;
}

export interface Target {
  key: string;
  what: string;
  wanted: string;
  figure: string;
  ok: boolean;
}

const MiB = 2 ** 20;
const verdict = (ok: boolean): string => (ok ? 'pass' : 'MISS');
const plus = (n: number, digits = 3): string => `${n >= 0 ? '+' : ''}${fixed(n, digits)}`;
const diffMib = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined ? '?' : plus((a - b) / MiB, 1));

export function targetsOf(r: RuntimeFigures, days: BenchFigures['days']): Target[] {
  const row = (name: CellName): ServingRow => r.serving.find((s) => s.cell === name)!;
  const one = row('1 keep-alive conn');
  const eight = row('8 keep-alive conns');
  const ratio8 = eight.agent.throughput / eight.bare.throughput;
  const bareStart = median(r.starts.nodeBareMs);
  const warmStart = median(r.starts.cacheDirectoryMs);
  const m = r.memory;
  const idleRss = (m.agentIdle?.rss ?? NaN) / MiB;
  const overBare = ((m.agentIdle?.private ?? NaN) - (m.bare?.private ?? NaN)) / MiB;
  const anonOverBare = ((m.agentIdle?.anonymous ?? NaN) - (m.bare?.anonymous ?? NaN)) / MiB;
  const afterRss = (m.agentAfter?.rss ?? NaN) / MiB;
  const peakRss = Math.max(...peaksOfAgent(r).map((p) => p.rss)) / MiB;
  const worstDay = Math.max(...days.map((d) => d.logins));
  const p1 = r.beyond.proxy.find((p) => p.connections === 1)!;
  const p8 = r.beyond.proxy.find((p) => p.connections === 8)!;
  const addedP50 = p1.proxy.p50Ms - p1.direct.p50Ms;
  const addedP99 = p1.proxy.p99Ms - p1.direct.p99Ms;
  const vsBareProxy = p8.proxy.throughput / p8.bareProxy.throughput;
  const enqueue16 = r.beyond.outbox.find((o) => o.tills === 16)!;
  const t = TARGETS;
  return [
    { key: 'serving8', what: 'serving at 8 conns, agent / bare http server', wanted: `>= ${t.servingRatio8}x`, figure: `${fixed(ratio8, 3)}x`, ok: ratio8 >= t.servingRatio8 },
    { key: 'p99one', what: 'serving p99 at 1 conn', wanted: `< ${t.p99OneConnMs} ms`, figure: `${fixed(one.agent.p99Ms, 3)} ms`, ok: one.agent.p99Ms < t.p99OneConnMs },
    {
      key: 'start',
      what: "start to ready, CACHE_DIRECTORY warm / node -e ''",
      wanted: `<= ${t.startRatio}x`,
      figure: `${fixed(warmStart / bareStart, 3)}x (${fixed(warmStart, 0)} / ${fixed(bareStart, 0)} ms)`,
      ok: warmStart / bareStart <= t.startRatio,
    },
    { key: 'idleRss', what: 'idle RSS, stored token (a)', wanted: `<= ${t.idleRssMiB} MiB`, figure: `${fixed(idleRss, 1)} MiB`, ok: idleRss <= t.idleRssMiB },
    { key: 'idlePrivate', what: 'idle private (clean+dirty) over bare node', wanted: `<= +${t.idleOverBareMiB} MiB`, figure: `${plus(overBare, 1)} MiB`, ok: overBare <= t.idleOverBareMiB },
    { key: 'idleAnon', what: 'idle anonymous over bare node', wanted: `<= +${t.idleOverBareMiB} MiB`, figure: `${plus(anonOverBare, 1)} MiB`, ok: anonOverBare <= t.idleOverBareMiB },
    { key: 'afterRss', what: 'RSS after a login + outbox open (b)', wanted: `<= ${t.afterLoginRssMiB} MiB`, figure: `${fixed(afterRss, 1)} MiB`, ok: afterRss <= t.afterLoginRssMiB },
    { key: 'peakRss', what: "peak RSS in the load cells (c) (the soak's bound)", wanted: `<= ${t.peakRssMiB} MiB`, figure: `${fixed(peakRss, 1)} MiB`, ok: peakRss <= t.peakRssMiB },
    ...r.bursts.map((b) => ({ key: `cold${b.n}`, what: `logins for ${b.n} concurrent cold requests`, wanted: `= ${t.coldLogins}`, figure: String(b.logins), ok: b.logins === t.coldLogins })),
    { key: 'day', what: 'logins per 24 h, 1 h tokens (worst seed; runtime-free)', wanted: `<= ${t.loginsPerDay} (min 24)`, figure: String(worstDay), ok: worstDay <= t.loginsPerDay },
    { key: 'proxyP50', what: 'proxy: added p50 at 1 conn', wanted: `<= ${t.proxyAddedP50Ms} ms`, figure: `${fixed(addedP50, 3)} ms`, ok: addedP50 <= t.proxyAddedP50Ms },
    { key: 'proxyP99', what: 'proxy: added p99 at 1 conn', wanted: `<= ${t.proxyAddedP99Ms} ms`, figure: `${fixed(addedP99, 3)} ms`, ok: addedP99 <= t.proxyAddedP99Ms },
    { key: 'proxy8', what: 'proxy: at 8 conns, agent / bare proxy', wanted: `>= ${t.proxyVsBareProxy8}x`, figure: `${fixed(vsBareProxy, 3)}x`, ok: vsBareProxy >= t.proxyVsBareProxy8 },
    {
      key: 'enqueue16',
      what: 'outbox: durable enqueues/s at 16 tills',
      wanted: `>= ${t.outboxEnqueuesPerS16}/s`,
      figure: `${fixed(enqueue16.agent.throughput, 0)}/s`,
      ok: enqueue16.agent.throughput >= t.outboxEnqueuesPerS16,
    },
  ];
}

/** The agent's memory peaks over every load cell (serving, proxy, outbox enqueue). */
function peaksOfAgent(r: RuntimeFigures): Smaps[] {
  const all = [...r.serving.map((s) => s.agent.peak), ...r.beyond.proxy.map((p) => p.peaks[0]), ...r.beyond.outbox.map((o) => o.agentPeak)];
  return all.filter((p): p is Smaps => p !== undefined);
}

function servingSection(r: RuntimeFigures, s: Settings): string[] {
  const rows: Array<Array<string | number>> = [];
  for (const c of r.serving) {
    for (const who of ['agent', 'bare'] as const) {
      const f = c[who];
      rows.push([
        who === 'agent' ? c.cell : '',
        who === 'agent' ? 'agent' : 'bare node http',
        fixed(f.throughput, 0),
        fixed(f.p50Ms, 3),
        fixed(f.p99Ms, 3),
        fixed(f.maxMs, 2),
        `${fixed(f.serverCpu * 100, 0)}%`,
        `${fixed(f.generatorCpu * 100, 0)}%`,
        who === 'agent' ? `${fixed(c.otherCpu * 100, 0)}%` : '',
        f.errors + f.non200,
      ]);
    }
    const ratio = (k: 'throughput' | 'p50Ms' | 'p99Ms'): string => `${fixed(c.agent[k] / c.bare[k])}x`;
    rows.push(['', 'agent / bare', ratio('throughput'), ratio('p50Ms'), ratio('p99Ms'), '', '', '', '', '']);
  }
  const busiest = Math.max(...r.serving.map((c) => c.otherCpu));
  return [
    `Serving GET ${TOKEN_PATH} over the Unix socket: closed loop, ${s.client === 'raw' ? 'raw HTTP/1.1 client' : 'node:http client'},`,
    `${s.warmupMs / 1000} s warm-up and ${s.durationMs / 1000} s measured per server and cell; both servers on this runtime with the unit's flags and --trace-gc`,
    table(['cell', 'server', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'server CPU', 'gen CPU', 'other CPU', 'errors'], rows),
    'server/gen CPU: share of one core during that server\'s slices; other CPU: every other process on the machine (in cores)',
    ...(busiest > 0.1 ? [`WARNING: other processes used up to ${fixed(busiest * 100, 0)}% of a core during the serving cells; figures are noisy`] : []),
    `logins at the emulator while serving: ${r.loginsWhileServing} (warm: expected 0)`,
  ];
}

function gcRow(cell: string, who: string, requests: number, gc: GcCounts | undefined): Array<string | number> {
  if (!gc) return [cell, who, requests, '?', '?', '?', '?', '?', '?'];
  return [
    cell,
    who,
    requests,
    gc.young,
    gc.full,
    fixed(perTenThousand(gc.young, requests), 1),
    fixed(perTenThousand(gc.full, requests), 2),
    fixed(perTenThousand(gc.pauseMs, requests), 1),
    fixed((gc.allocatedMb * 1024) / requests, 1),
  ];
}

function gcSection(r: RuntimeFigures): string[] {
  const rows: Array<Array<string | number>> = [];
  for (const c of r.serving) {
    rows.push(gcRow(`serving, ${c.cell}`, 'agent', c.agent.requests, c.agent.gc));
    rows.push(gcRow('', 'bare node http', c.bare.requests, c.bare.gc));
  }
  for (const p of r.beyond.proxy) {
    rows.push(gcRow(`proxy, ${p.cell}`, 'agent', p.proxy.requests, p.agentGc));
    rows.push(gcRow('', 'bare Node proxy', p.bareProxy.requests, p.bareProxyGc));
  }
  return [
    'Collections per 10,000 requests (each server run with --trace-gc; counted over the measured slices; young = Scavenge,',
    'full = Mark-Compact; pause: the sum of their pauses; alloc: heap growth between collections per request, which unlike',
    'the counts does not depend on how large the young generation has grown). Load-independent: compare before and after',
    table(['cell', 'server', 'requests', 'young', 'full', 'young/10k', 'full/10k', 'pause ms/10k', 'alloc KB/req'], rows),
  ];
}

/** Node 22.1 and later have the module compile cache (NODE_COMPILE_CACHE, module.enableCompileCache). */
function hasCompileCache(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  return major > 22 || (major === 22 && minor >= 1);
}

function startSection(r: RuntimeFigures, s: Settings): string[] {
  const st = r.starts;
  const bare = median(st.nodeBareMs);
  const line = (what: string, values: number[] | undefined, note = ''): Array<string | number> =>
    values && values.length > 0
      ? [what, fixed(median(values), 0), fixed(Math.min(...values), 0), fixed(Math.max(...values), 0), `${fixed(median(values) / bare)}x`, note]
      : [what, '-', '-', '-', '-', note];
  const flags = r.nodeFlags.join(' ');
  return [
    `Start to ready (median of ${s.starts}; agent: spawn → first 200 from GET /v1/token with a stored token; node: spawn → exit)`,
    table(
      ['what', 'median ms', 'min ms', 'max ms', "vs node -e ''", 'note'],
      [
        line("node -e ''", st.nodeBareMs, 'the baseline'),
        ...(st.nodeFlagsMs ? [line(`node ${flags} -e ''`, st.nodeFlagsMs, "the unit's flags")] : []),
        line('agent, no compile cache', st.agentMs),
        line('agent, CACHE_DIRECTORY set, warm', st.cacheDirectoryMs, `${st.cacheDirectoryFiles} files in it${st.cacheDirectoryFiles === 0 ? ': the agent does not use it' : ''}`),
        line('agent, NODE_COMPILE_CACHE warm', st.compileCacheMs, `${st.compileCacheFiles} files in it${hasCompileCache(r.runtime.version) ? '' : ' (Node < 22.1 has no compile cache)'}`),
        line('agent: spawn → "listening" log', st.agentListeningMs, 'no compile cache; ms resolution'),
      ],
    ),
  ];
}

function memoryRow(what: string, s: Smaps | undefined, target = ''): Array<string | number> {
  return [what, mib(s?.rss), mib(s?.pss), mib(s?.private), mib(s?.anonymous), mib(s?.fileBacked), target];
}

function memorySection(r: RuntimeFigures): string[] {
  const m = r.memory;
  const t = TARGETS;
  const flags = r.nodeFlags.length > 0;
  const limit = (base: number | undefined): string => (base === undefined ? '?' : fixed(base / MiB + t.idleOverBareMiB, 1));
  const delta = (a: Smaps | undefined, b: Smaps | undefined): Array<string | number> => [
    'agent (a) - bare node',
    ...(['rss', 'pss', 'private', 'anonymous', 'fileBacked'] as const).map((k) => diffMib(a?.[k], b?.[k])),
    `private, anon <= +${t.idleOverBareMiB}`,
  ];
  const peak = (what: string, s: Smaps | undefined, target = ''): Array<string | number> => memoryRow(what, s, target);
  const maxOf = (list: Array<Smaps | undefined>): Smaps | undefined => list.reduce<Smaps | undefined>((a, b) => peakOf(a, b), undefined);
  return [
    `Memory, MiB, from /proc/PID/smaps_rollup (idle: ${m.settleMs / 1000} s after the first token; each measured alone): private = Private_Clean +`,
    'Private_Dirty, anon = Anonymous, file = Rss - Anonymous (the node binary, libraries, addons). Peaks: each field\'s own maximum',
    table(
      ['process', 'RSS', 'PSS', 'private', 'anon', 'file', 'target'],
      [
        memoryRow("bare node -e 'setInterval(...)', idle", m.bare),
        ...(flags ? [memoryRow("bare node, the unit's flags, idle", m.bareFlags)] : []),
        memoryRow('agent idle, stored token (a)', m.agentIdle, `RSS <= ${t.idleRssMiB}; private <= ${limit(m.bare?.private)}; anon <= ${limit(m.bare?.anonymous)}`),
        delta(m.agentIdle, m.bare),
        ...(flags ? [memoryRow("agent idle without the unit's flags", m.agentIdleNoFlags)] : []),
        memoryRow('agent idle, the account has an apiUrl', m.agentIdleApi),
        memoryRow('agent after a login + one outbox entry (b)', m.agentAfter, `RSS <= ${t.afterLoginRssMiB}`),
        peak('peak, serving cells: agent (c)', maxOf(r.serving.map((s) => s.agent.peak)), `RSS <= ${t.peakRssMiB} (soak)`),
        peak('peak, serving cells: bare node http', maxOf(r.serving.map((s) => s.bare.peak))),
        peak('peak, proxy cells: agent (c)', maxOf(r.beyond.proxy.map((p) => p.peaks[0]))),
        peak('peak, proxy cells: bare Node proxy', maxOf(r.beyond.proxy.map((p) => p.peaks[2]))),
        peak('peak, outbox enqueue cells: agent (c)', maxOf(r.beyond.outbox.map((o) => o.agentPeak))),
      ],
    ),
    ...(m.afterProblem ? [`WARNING: forcing (b): ${m.afterProblem}`] : []),
    ...(r.runtime.name === 'machine'
      ? ["note: the bench's own processes run this node too, so its pages count as shared here: PSS is split and private is lower"]
      : ['note: during the peaks the bare servers run the same node binary beside the agent: PSS is split between them']),
  ];
}

function burstSection(r: RuntimeFigures): string[] {
  return [
    `Cold agent, N concurrent first requests (no stored token; the emulator holds each login ${COLD_LOGIN_LATENCY_MS} ms)`,
    table(
      ['N', 'logins', 'answers', 'errors', 'p50 ms', 'max ms'],
      r.bursts.map((b) => [
        b.n,
        b.logins,
        Object.entries(b.statuses).map(([s, c]) => `${c}x${s}`).join(' ') || '-',
        b.errors ? `${b.errors} (${b.firstError ?? ''})` : 0,
        fixed(b.p50Ms, 0),
        fixed(b.maxMs, 0),
      ]),
    ),
  ];
}

function proxyRows(p: ProxyRow): Array<Array<string | number>> {
  const rows: Array<Array<string | number>> = [];
  for (const who of ['proxy', 'bareProxy', 'direct'] as const) {
    const c = p[who];
    rows.push([
      who === 'proxy' ? p.cell : '',
      who === 'proxy' ? 'via the agent' : who === 'bareProxy' ? 'via a bare Node proxy' : 'direct',
      fixed(c.throughput, 0),
      fixed(c.p50Ms, 3),
      fixed(c.p99Ms, 3),
      fixed(c.maxMs, 2),
      `${fixed((c.cpu[who === 'bareProxy' ? 2 : 0] ?? NaN) * 100, 0)}%`,
      `${fixed((c.cpu[1] ?? NaN) * 100, 0)}%`,
      `${fixed(c.generatorCpu * 100, 0)}%`,
      who === 'proxy' ? `${fixed(p.otherCpu * 100, 0)}%` : '',
      c.errors + c.non200,
    ]);
  }
  for (const [label, via] of [['agent adds', p.proxy], ['a bare Node proxy adds', p.bareProxy]] as const) {
    rows.push(['', label, `${fixed(via.throughput / p.direct.throughput)}x`, plus(via.p50Ms - p.direct.p50Ms), plus(via.p99Ms - p.direct.p99Ms), ...Array<string>(6).fill('')]);
  }
  rows.push(['', 'agent / bare proxy', `${fixed(p.proxy.throughput / p.bareProxy.throughput)}x`, ...Array<string>(8).fill('')]);
  return rows;
}

function proxySection(r: RuntimeFigures, s: Settings): string[] {
  const b = r.beyond;
  const one = b.proxy.find((p) => p.connections === 1)!;
  return [
    `Proxy: POST /v1/proxy/default${API_PATH} over the socket vs POST ${b.emulatorUrl}${API_PATH} direct (Bearer: the`,
    `agent's token), ${Buffer.byteLength(API_BODY)}-byte JSON body, answered 202 by the emulator in its own process (the machine's node); closed`,
    `loop, keep-alive, the three taking turns in ${s.sliceMs} ms slices, ${s.warmupMs / 1000} s warm-up and ${s.durationMs / 1000} s measured each; agent and bare proxy with --trace-gc`,
    table(['cell', 'path', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'proxy CPU', 'emulator CPU', 'gen CPU', 'other CPU', 'errors'], b.proxy.flatMap(proxyRows)),
    "(proxy CPU is the agent's for its rows and the bare proxy's for its rows, each during that target's slices)",
    `added latency at 1 conn: p50 ${plus(one.proxy.p50Ms - one.direct.p50Ms)} ms, p99 ${plus(one.proxy.p99Ms - one.direct.p99Ms)} ms (a bare Node proxy: p50 ${plus(one.bareProxy.p50Ms - one.direct.p50Ms)}, p99 ${plus(one.bareProxy.p99Ms - one.direct.p99Ms)})`,
  ];
}

function outboxSection(r: RuntimeFigures, s: Settings): string[] {
  const b = r.beyond;
  const rows: Array<Array<string | number>> = [];
  for (const o of b.outbox) {
    rows.push([o.tills, 'agent POST /v1/outbox', fixed(o.agent.throughput, 0), fixed(o.agent.p50Ms, 3), fixed(o.agent.p99Ms, 3), fixed(o.agent.maxMs, 2), `${fixed((o.agent.cpu[0] ?? NaN) * 100, 0)}%`, `${fixed(o.agent.generatorCpu * 100, 0)}%`, `${fixed(o.otherCpu * 100, 0)}%`, o.agent.errors + o.agent.non200]);
    rows.push(['', 'bare SQLite, 1 tx per insert', fixed(o.sqlite.throughput, 0), fixed(o.sqlite.p50Ms, 3), fixed(o.sqlite.p99Ms, 3), fixed(o.sqlite.maxMs, 2), '-', `${fixed(o.sqlite.generatorCpu * 100, 0)}%`, '', o.sqlite.errors]);
    rows.push(['', 'agent / bare', `${fixed(o.agent.throughput / o.sqlite.throughput)}x`, '', '', '', '', '', '', '']);
  }
  const d = b.delivery;
  const direct = b.proxy.find((p) => p.connections === 1)!.direct.throughput;
  return [
    'Outbox enqueue: POST /v1/outbox, each till one keep-alive connection waiting for its 202 (stored, synchronous=FULL) before',
    'the next; the API down. Baseline: a bare better-sqlite3 loop (the generator, on the machine\'s node), one row per IMMEDIATE',
    `transaction (WAL, synchronous=FULL, the outbox's table) in the agent's state dir (${b.outboxFs}); turns of ${s.sliceMs} ms`,
    table(['tills', 'what', 'per s', 'p50 ms', 'p99 ms', 'max ms', 'agent CPU', 'gen CPU', 'other CPU', 'errors'], rows),
    '',
    `Outbox delivery: ${d.queued} entries queued with the API down, then the agent restarted with the API up; one request in`,
    'flight per account (by contract). Rate: from the first to the last request the emulator received',
    table(
      ['what', 'requests', 'seconds', 'per s'],
      [
        ['agent outbox delivery', `${d.received} (${Object.entries(d.statuses).map(([k, c]) => `${c}x${k}`).join(' ') || '-'}, ${d.duplicates} dup)`, fixed(d.spanMs / 1000, 2), fixed(d.perSecond, 0)],
        ["direct at 1 conn (the proxy section's baseline)", '-', '-', fixed(direct, 0)],
        ['delivery / direct', '', '', `${fixed(d.perSecond / direct)}x`],
      ],
    ),
    `agent spawn → nothing queued: ${fixed(d.spawnToDrainedMs, 0)} ms` +
      (d.leftQueued > 0 ? `; WARNING: ${d.leftQueued} still queued when the wait ended` : '') +
      (d.fillFailures > 0 ? `; WARNING: ${d.fillFailures} enqueues not answered 202` : ''),
  ];
}

export function runtimeTitle(r: RuntimeFigures): string {
  return `${r.runtime.name} runtime: Node ${r.runtime.version}`;
}

function runtimeSection(r: RuntimeFigures, s: Settings): string[] {
  const env = Object.entries(r.env).map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
  const title = `== ${runtimeTitle(r)} (${r.runtime.node}) ==`;
  return [
    title,
    `from: ${r.runtime.source}; the agent: ${relative(ROOT, r.runtime.cli).startsWith('..') ? r.runtime.cli : relative(ROOT, r.runtime.cli)}`,
    `node flags (from ${r.flagsFrom}): ${r.nodeFlags.join(' ') || 'none'}; the unit's NODE_* environment: ${env}` +
      (r.cacheDirectory ? `; CACHE_DIRECTORY=${r.cacheDirectory} (the unit has CacheDirectory=)` : ''),
    '',
    ...servingSection(r, s),
    '',
    ...gcSection(r),
    '',
    ...startSection(r, s),
    '',
    ...memorySection(r),
    '',
    ...burstSection(r),
    '',
    ...proxySection(r, s),
    '',
    ...outboxSection(r, s),
    '',
    `(${fixed(r.seconds, 0)} s on this runtime)`,
  ];
}

/** The targets with a column per runtime, and the closing line. */
function targetsSection(f: BenchFigures): string[] {
  const per = f.runtimes.map((r) => targetsOf(r, f.days));
  const keys = per[0]?.map((t) => t.key) ?? [];
  const rows = keys.map((key) => {
    const first = per[0]!.find((t) => t.key === key)!;
    return [first.what, first.wanted, ...per.map((ts) => {
      const t = ts.find((x) => x.key === key);
      return t ? `${t.figure} ${verdict(t.ok)}` : '-';
    })];
  });
  const lines = ['Targets (each runtime\'s figure against its own baseline)', table(['target', 'wanted', ...f.runtimes.map(runtimeTitle)], rows), ''];
  for (const [i, r] of f.runtimes.entries()) {
    const missed = per[i]!.filter((t) => !t.ok).length;
    lines.push(`${r.runtime.name}: ${missed === 0 ? `all ${per[i]!.length} targets met` : `${missed} of ${per[i]!.length} targets MISSED`}`);
  }
  lines.push(`(${fixed(f.seconds, 0)} s in all; the bench measures and does not gate: exit 0)`);
  return lines;
}

export function reportText(f: BenchFigures): string {
  const out: string[] = [];
  out.push(`pos-token-agent bench — ${new Date().toISOString()}`);
  out.push(`machine: ${f.machine.cpu}, ${f.machine.cores} cores, ${f.machine.memoryGiB} GiB, Linux ${f.machine.kernel}; the bench and its generator on Node ${f.machine.node}`);
  out.push(`runtimes: ${f.runtimes.map((r) => `${r.runtime.name} (Node ${r.runtime.version})`).join(', ')}`);
  out.push(`load average (1 min) before the run: ${fixed(f.loadBefore)}, after: ${fixed(f.loadAfter)}`);
  if (f.machine.cores <= 2) {
    out.push(
      `note: ${f.machine.cores} cores: the load generator and the server compete for them. Each server and its baseline are measured by`,
      `      the same generator process with the same settings, taking turns in ${f.settings.sliceMs} ms slices; the CPU columns show who saturated.`,
    );
  }
  for (const r of f.runtimes) out.push('', ...runtimeSection(r, f.settings));
  out.push('', 'Logins in 24 simulated hours (FakeClock, 3600 s tokens, a request with min_ttl 60 every minute; the bench\'s own process)');
  out.push(table(['seed', 'logins', 'requests', 'failed'], f.days.map((d) => [d.seed, d.logins, d.requests, d.failedRequests])));
  out.push('', ...targetsSection(f));
  return out.join('\n');
}

