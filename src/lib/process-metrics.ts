const { readdirSync } = process.getBuiltinModule('node:fs');
const { PerformanceObserver } = process.getBuiltinModule('node:perf_hooks');
/**
 * The process's own figures in /metrics, named as Prometheus's client libraries name them: resident memory and open
 * file descriptors (`process_*`), V8's heap and external memory (`nodejs_*`), collections by kind, and the heap in use
 * right after the last major collection (what a leak shows in: it climbs; a heap merely growing towards its limit
 * does not). Everything is read when /metrics is asked, except the collections: a PerformanceObserver on `gc` entries
 * counts them by kind in a fixed array (nothing allocated per minor collection) and reads the heap only after a
 * major one.
 *
 * The heap in use is process.memoryUsage().heapUsed: V8's used_heap_size, what v8.getHeapStatistics() gives, without
 * loading node:v8 (1.8 MiB resident on Node 24). node:perf_hooks costs nothing more: the clock's performance.now()
 * has loaded it already.
 */
import type { NodeGCPerformanceDetail, PerformanceEntry } from 'node:perf_hooks';
import type { GaugeCollector, MetricsRegistry } from './metrics.js';

/** The kinds of Node's `gc` performance entries (perf_hooks.constants.NODE_PERFORMANCE_GC_*), as labelled. */
export const GC_KINDS: ReadonlyArray<{ kind: number; label: string }> = [
  { kind: 1, label: 'minor' },
  // V8's minor mark-sweep, off by default (Node 22 and later name it).
  { kind: 2, label: 'minor_mark_sweep' },
  { kind: 4, label: 'major' },
  { kind: 8, label: 'incremental' },
  { kind: 16, label: 'weakcb' },
];
const MAJOR = 4;
/** Where a kind this table does not know is counted: the slot after the known ones, labelled `other`. */
const OTHER = GC_KINDS.length;

/** The slot of an entry's kind in GC_KINDS, or OTHER. */
export function gcKindSlot(kind: number): number {
  for (let i = 0; i < GC_KINDS.length; i++) if (GC_KINDS[i]!.kind === kind) return i;
  return OTHER;
}

/** What the figures are read from: this process by default, a fake in tests. */
export interface ProcessSource {
  /** Resident memory in bytes. */
  rss(): number;
  /** V8's heap in use and allocated, and memory held outside it by JavaScript objects (Buffers), in bytes. */
  heap(): { used: number; total: number; external: number };
  /** Open file descriptors, or undefined where they cannot be counted. */
  openFds(): number | undefined;
  /** Calls `onGc(kind)` after each collection; returns what stops that. */
  observeGc(onGc: (kind: number) => void): () => void;
}

export const nodeProcess: ProcessSource = {
  rss: () => process.memoryUsage.rss(),
  heap() {
    const m = process.memoryUsage();
    return { used: m.heapUsed, total: m.heapTotal, external: m.external };
  },
  openFds() {
    try {
      // Reading the directory holds one descriptor open itself.
      return readdirSync('/proc/self/fd').length - 1;
    } catch {
      return undefined;
    }
  },
  observeGc(onGc) {
    const observer = new PerformanceObserver((list) => {
      const entries = list.getEntries();
      // A gc entry's detail is {kind, flags} (Node's typings leave it out of PerformanceEntry).
      for (let i = 0; i < entries.length; i++) onGc((entries[i] as PerformanceEntry & { detail: NodeGCPerformanceDetail }).detail.kind);
    });
    observer.observe({ entryTypes: ['gc'] });
    return () => observer.disconnect();
  },
};

export interface ProcessMetrics {
  /** Stops observing the collector (the figures read at scrape time stay). */
  stop(): void;
}

const one = (value: number | undefined): ReturnType<GaugeCollector> => (value === undefined ? [] : [{ labels: {}, value }]);

/** Adds the process's figures to `metrics` and starts counting collections. */
export function registerProcessMetrics(metrics: MetricsRegistry, source: ProcessSource = nodeProcess): ProcessMetrics {
  const counts = new Array<number>(GC_KINDS.length + 1).fill(0);
  let heapAfterGc: number | undefined;
  const stop = source.observeGc((kind) => {
    const slot = gcKindSlot(kind);
    counts[slot] = counts[slot]! + 1;
    if (kind === MAJOR) heapAfterGc = source.heap().used;
  });
  metrics.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', () => one(source.rss()));
  metrics.gauge('process_open_fds', 'Number of open file descriptors.', () => one(source.openFds()));
  metrics.gauge('nodejs_heap_used_bytes', 'V8 heap in use, in bytes.', () => one(source.heap().used));
  metrics.gauge('nodejs_heap_total_bytes', 'V8 heap allocated (in use and free), in bytes.', () => one(source.heap().total));
  metrics.gauge('nodejs_external_memory_bytes', 'Memory held outside the V8 heap by JavaScript objects (Buffers), in bytes.', () =>
    one(source.heap().external),
  );
  metrics.gauge(
    'pos_token_agent_heap_after_gc_bytes',
    'V8 heap in use right after the last major collection, in bytes (absent before the first).',
    () => one(heapAfterGc),
  );
  metrics.counterFrom('nodejs_gc_total', 'Garbage collections by kind.', () => [
    ...GC_KINDS.map((k, i) => ({ labels: { kind: k.label }, value: counts[i]! })),
    ...(counts[OTHER]! > 0 ? [{ labels: { kind: 'other' }, value: counts[OTHER]! }] : []),
  ]);
  return { stop };
}
