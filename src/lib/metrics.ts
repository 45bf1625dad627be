/** A tiny Prometheus registry: counters and histograms with labels, rendered as text exposition. */
type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}="${String(labels[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
}

/**
 * labelKey sorts and escapes on every call; the same few label sets come back on every request, so each metric
 * remembers the keys it has seen (bounded: past the limit it just computes them).
 */
const MEMO_LIMIT = 1_000;
function labelKeyMemo(): (labels: Labels) => string {
  const memo = new Map<string, string>();
  return (labels) => {
    let raw = '';
    for (const k in labels) raw += `${k}\u0000${labels[k]}\u0001`;
    let key = memo.get(raw);
    if (key === undefined) {
      key = labelKey(labels);
      if (memo.size < MEMO_LIMIT) memo.set(raw, key);
    }
    return key;
  };
}

export interface Counter {
  inc(labels?: Labels, by?: number): void;
  /**
   * One series of the counter, its labels resolved once: `inc` is then an addition, for a hot path that counts the
   * same series on every request. The series shows in the exposition from its first `inc`, as with `inc(labels)`.
   */
  series(labels?: Labels): CounterSeries;
}
export interface CounterSeries {
  inc(by?: number): void;
}
export interface Histogram {
  observe(value: number, labels?: Labels): void;
}
export type GaugeCollector = () => Array<{ labels: Labels; value: number }>;

export interface MetricsRegistry {
  counter(name: string, help: string): Counter;
  histogram(name: string, help: string, buckets: number[]): Histogram;
  gauge(name: string, help: string, collect: GaugeCollector): void;
  /** A counter whose values are kept elsewhere and read at render time (e.g. counted without allocating). */
  counterFrom(name: string, help: string, collect: GaugeCollector): void;
  render(): string;
}

/** A metric block whose samples `collect` gives at render time. */
function collected(name: string, help: string, type: 'gauge' | 'counter', collect: GaugeCollector): () => string {
  return () => {
    let out = `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
    for (const { labels, value } of collect()) {
      const k = labelKey(labels);
      out += `${name}${k ? `{${k}}` : ''} ${value}\n`;
    }
    return out;
  };
}

export function createMetrics(): MetricsRegistry {
  const blocks: Array<() => string> = [];
  return {
    counter(name, help) {
      const values = new Map<string, { value: number }>();
      const keyOf = labelKeyMemo();
      const cellOf = (k: string): { value: number } => {
        let cell = values.get(k);
        if (!cell) values.set(k, (cell = { value: 0 }));
        return cell;
      };
      blocks.push(() => {
        let out = `# HELP ${name} ${help}\n# TYPE ${name} counter\n`;
        for (const [k, { value }] of values) out += `${name}${k ? `{${k}}` : ''} ${value}\n`;
        return out;
      });
      return {
        inc(labels = {}, by = 1) {
          cellOf(keyOf(labels)).value += by;
        },
        series(labels = {}) {
          const k = labelKey(labels);
          let cell: { value: number } | undefined;
          return {
            inc(by = 1) {
              (cell ??= cellOf(k)).value += by;
            },
          };
        },
      };
    },
    histogram(name, help, buckets) {
      const series = new Map<string, { counts: number[]; sum: number; count: number }>();
      blocks.push(() => {
        let out = `# HELP ${name} ${help}\n# TYPE ${name} histogram\n`;
        for (const [k, s] of series) {
          const sep = k ? ',' : '';
          buckets.forEach((b, i) => (out += `${name}_bucket{${k}${sep}le="${b}"} ${s.counts[i]}\n`));
          out += `${name}_bucket{${k}${sep}le="+Inf"} ${s.count}\n`;
          out += `${name}_sum${k ? `{${k}}` : ''} ${s.sum}\n${name}_count${k ? `{${k}}` : ''} ${s.count}\n`;
        }
        return out;
      });
      return {
        observe(value, labels = {}) {
          const k = labelKey(labels);
          let s = series.get(k);
          if (!s) series.set(k, (s = { counts: buckets.map(() => 0), sum: 0, count: 0 }));
          buckets.forEach((b, i) => {
            if (value <= b) s.counts[i]! += 1;
          });
          s.sum += value;
          s.count += 1;
        },
      };
    },
    gauge(name, help, collect) {
      blocks.push(collected(name, help, 'gauge', collect));
    },
    counterFrom(name, help, collect) {
      blocks.push(collected(name, help, 'counter', collect));
    },
    render() {
      return blocks.map((b) => b()).join('');
    },
  };
}
