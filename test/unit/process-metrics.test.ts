import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createMetrics } from '../../src/lib/metrics.js';
import { gcKindSlot, GC_KINDS, registerProcessMetrics, type ProcessSource } from '../../src/lib/process-metrics.js';

/** The samples of /metrics text as "name{labels}" -> value, and each metric's TYPE. */
function parse(text: string): { values: Map<string, number>; types: Map<string, string> } {
  const values = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1]!, t[2]!);
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) values.set(m[1]!, Number(m[2]));
  }
  return { values, types };
}

/** A process whose figures the test sets, and which counts how often the heap was read. */
function fakeProcess() {
  const state = { rss: 50e6, used: 10e6, total: 20e6, external: 1e6, fds: 17 as number | undefined, heapReads: 0, stopped: 0 };
  let onGc: ((kind: number) => void) | undefined;
  const source: ProcessSource = {
    rss: () => state.rss,
    heap() {
      state.heapReads++;
      return { used: state.used, total: state.total, external: state.external };
    },
    openFds: () => state.fds,
    observeGc(fn) {
      onGc = fn;
      return () => state.stopped++;
    },
  };
  return { state, source, gc: (kind: number) => onGc!(kind) };
}

describe('process metrics', () => {
  test('the kinds of gc entries map to their labels; an unknown kind to the slot after them (other)', () => {
    assert.deepEqual(
      [1, 2, 4, 8, 16, 32, 0].map((k) => gcKindSlot(k)),
      [0, 1, 2, 3, 4, GC_KINDS.length, GC_KINDS.length],
    );
    assert.deepEqual(GC_KINDS.map((k) => k.label), ['minor', 'minor_mark_sweep', 'major', 'incremental', 'weakcb']);
  });

  test('memory and descriptors are read at scrape time, as gauges under the Prometheus names', () => {
    const p = fakeProcess();
    const metrics = createMetrics();
    registerProcessMetrics(metrics, p.source);
    p.state.rss = 61e6;
    p.state.used = 12e6;
    const { values, types } = parse(metrics.render());
    assert.equal(values.get('process_resident_memory_bytes'), 61e6);
    assert.equal(values.get('process_open_fds'), 17);
    assert.equal(values.get('nodejs_heap_used_bytes'), 12e6);
    assert.equal(values.get('nodejs_heap_total_bytes'), 20e6);
    assert.equal(values.get('nodejs_external_memory_bytes'), 1e6);
    for (const name of ['process_resident_memory_bytes', 'process_open_fds', 'nodejs_heap_used_bytes', 'pos_token_agent_heap_after_gc_bytes']) {
      assert.equal(types.get(name), 'gauge', name);
    }
    assert.equal(types.get('nodejs_gc_total'), 'counter');
  });

  test('where descriptors cannot be counted, and before the first major collection, those figures are absent, not 0', () => {
    const p = fakeProcess();
    p.state.fds = undefined;
    const metrics = createMetrics();
    registerProcessMetrics(metrics, p.source);
    p.gc(1);
    const { values, types } = parse(metrics.render());
    assert.equal(values.has('process_open_fds'), false);
    assert.equal(values.has('pos_token_agent_heap_after_gc_bytes'), false);
    assert.equal(types.get('pos_token_agent_heap_after_gc_bytes'), 'gauge');
  });

  test('collections are counted by kind; the heap is read after a major one only, and kept as it was then', () => {
    const p = fakeProcess();
    const metrics = createMetrics();
    registerProcessMetrics(metrics, p.source);
    for (let i = 0; i < 1000; i++) p.gc(1);
    p.gc(8);
    assert.equal(p.state.heapReads, 0, 'a minor or incremental collection reads nothing');
    p.state.used = 7e6;
    p.gc(4);
    assert.equal(p.state.heapReads, 1);
    p.state.used = 30e6; // the heap grows again; the figure stays the one after the collection
    p.gc(32);
    const { values } = parse(metrics.render());
    assert.equal(values.get('pos_token_agent_heap_after_gc_bytes'), 7e6);
    assert.equal(values.get('nodejs_heap_used_bytes'), 30e6);
    assert.equal(values.get('nodejs_gc_total{kind="minor"}'), 1000);
    assert.equal(values.get('nodejs_gc_total{kind="incremental"}'), 1);
    assert.equal(values.get('nodejs_gc_total{kind="major"}'), 1);
    assert.equal(values.get('nodejs_gc_total{kind="weakcb"}'), 0);
    assert.equal(values.get('nodejs_gc_total{kind="other"}'), 1);
  });

  test('stop() stops observing the collector', () => {
    const p = fakeProcess();
    registerProcessMetrics(createMetrics(), p.source).stop();
    assert.equal(p.state.stopped, 1);
  });

  test('this process: a forced major collection is counted and the heap after it reported; descriptors are /proc/self/fd', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const metrics = createMetrics();
    const pm = registerProcessMetrics(metrics);
    try {
      const before = parse(metrics.render()).values;
      assert.ok((before.get('process_resident_memory_bytes') ?? 0) > 10 * 2 ** 20, 'resident memory in bytes');
      const fds = before.get('process_open_fds')!;
      assert.ok(Math.abs(fds - readdirSync('/proc/self/fd').length) <= 2, `${fds} descriptors`);
      gc();
      // The observer hears of it on a later turn of the event loop.
      const deadline = Date.now() + 5_000;
      let after = parse(metrics.render()).values;
      while ((after.get('nodejs_gc_total{kind="major"}') ?? 0) < 1 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        after = parse(metrics.render()).values;
      }
      assert.ok(after.get('nodejs_gc_total{kind="major"}')! >= 1, 'the major collection is counted');
      const heapAfter = after.get('pos_token_agent_heap_after_gc_bytes')!;
      assert.ok(heapAfter > 1e6 && heapAfter <= after.get('nodejs_heap_total_bytes')!, `heap after gc ${heapAfter}`);
      pm.stop();
      const counted = after.get('nodejs_gc_total{kind="major"}')!;
      gc();
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(parse(metrics.render()).values.get('nodejs_gc_total{kind="major"}'), counted, 'nothing counted after stop()');
    } finally {
      pm.stop();
    }
  });
});
