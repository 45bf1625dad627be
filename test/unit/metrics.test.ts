import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMetrics } from '../../src/lib/metrics.js';

describe('metrics: counters', () => {
  it('a series (labels resolved once, for a hot path) counts into the same line as inc() with those labels, and shows from its first inc', () => {
    const metrics = createMetrics();
    const counter = metrics.counter('pos_x_total', 'X by route and status.');
    const series = counter.series({ route: '/v1/token', status: '200' });
    assert.doesNotMatch(metrics.render(), /^pos_x_total\{/m, 'a series never counted is not shown');
    series.inc();
    counter.inc({ status: '200', route: '/v1/token' });
    series.inc(2);
    counter.inc({ route: '/v1/token', status: '404' });
    const lines = metrics.render().split('\n').filter((l) => l.startsWith('pos_x_total{'));
    assert.deepEqual(lines, ['pos_x_total{route="/v1/token",status="200"} 4', 'pos_x_total{route="/v1/token",status="404"} 1']);
  });

  it('a series without labels is the bare counter', () => {
    const metrics = createMetrics();
    const counter = metrics.counter('pos_y_total', 'Y.');
    counter.series().inc();
    counter.inc();
    assert.match(metrics.render(), /^pos_y_total 2$/m);
  });
});
