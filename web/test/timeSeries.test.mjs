// Tests of the sensor chart's pure parts: time ticks, the line with gaps, the value range, and the
// description a screen reader gets (run with `npm test`).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describe, formatTime, linePath, timeTicks, valueRange } from '../src/timeSeries.js';

const T0 = Date.parse('2026-03-01T10:00:00Z');
const HOUR = 3_600_000;

test('time ticks fall on round hours, 3 to 8 of them', () => {
  assert.deepEqual(timeTicks(T0 - 5.5 * HOUR, T0), [-5, -4, -3, -2, -1, 0].map((h) => T0 + h * HOUR));
  const day = timeTicks(T0 - 48 * HOUR, T0);
  assert.deepEqual(day.map((t) => new Date(t).toISOString().slice(11, 13)), ['12', '00', '12', '00']);
  assert.deepEqual(timeTicks(T0, T0), [T0]);
  assert.equal(formatTime(T0), '2026-03-01 10:00 UTC');
  assert.equal(formatTime(T0, true), '10:00');
});

test('a missing value breaks the line instead of dropping to zero', () => {
  const points = [[0, 1], [1, 2], [2, null], [3, 4], [4, 5]];
  assert.equal(linePath(points, (t) => t * 10, (v) => 100 - v), 'M0.0,99.0L10.0,98.0M30.0,96.0L40.0,95.0');
});

test('the value range holds every observation and every limit, from zero for positive data', () => {
  const range = valueRange([[0, 150], [1, 250]], [{ above: 200 }, { above: 400 }]);
  assert.equal(range.min, 0);
  assert.ok(range.max >= 400);
  assert.deepEqual(range.ticks, [0, 200, 400]);
  const negative = valueRange([[0, -5], [1, 5]], []);
  assert.ok(negative.min < -5 && negative.max > 5);
});

test('the description says the values, the limits and the alerts in words', () => {
  const text = describe({
    datastream: { name: 'NO2 at Köln', unit: 'ug/m3', unit_symbol: 'µg/m³' },
    observations: [[T0 - HOUR, 180], [T0, 250]],
    limits: [{ rule: 'no2_high', severity: 'critical', above: 200, below: null, applies_to: 'value' },
             { rule: 'no2_hourly_limit', severity: 'warning', above: 200, below: null, applies_to: 'hour mean' }],
    alerts: [{ id: 7, rule: 'no2_high', status: 'open', opened_at: '2026-03-01T10:00:00Z', closed_at: null }],
  });
  assert.equal(
    text,
    'NO2 at Köln, in µg/m³. 2 observations from 2026-03-01 09:00 UTC to 2026-03-01 10:00 UTC; lowest 180, highest 250, latest 250.' +
      ' Rule no2_high (critical) fires when a value is above 200 µg/m³.' +
      ' Rule no2_hourly_limit (warning) fires when the hour mean is above 200 µg/m³.' +
      ' Alert 7 of rule no2_high open since 2026-03-01 10:00 UTC.',
  );
});
