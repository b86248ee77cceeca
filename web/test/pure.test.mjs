// Tests of the viewer's pure functions (palettes, number formatting, KPI display, differences,
// chart ticks), run with `npm test` (Node's own test runner; no extra dependency).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { niceTicks } from '../src/chart.js';
import { changeClass, columnLabel, differenceBetween, kpiDisplay, kpisByEngine, mappedPlan, tableValues } from '../src/kpi.js';
import { PUOR, VIRIDIS, quantileBreaks, rampExpression, sample, stepExpression } from '../src/palettes.js';
import { formatNumber, formatSigned, formatValue, humanise, inSentence } from '../src/ui.js';

const comparison = {
  baseline: 'base',
  plans: ['p1', 'p2'],
  differences: [{ kpi: 'co2_kg', plan: 'p1', mean: 10, ci_low: 4, ci_high: 16, distinguishable: true, words: 'up' }],
};

test('differences are plan − baseline, turned round when B is the baseline, absent between plans', () => {
  assert.deepEqual(differenceBetween(comparison, 'co2_kg', 'base', 'p1'), { ...comparison.differences[0], sign: 1 });
  assert.deepEqual(differenceBetween(comparison, 'co2_kg', 'p1', 'base'), {
    ...comparison.differences[0], mean: -10, ci_low: -16, ci_high: -4, sign: -1,
  });
  assert.equal(differenceBetween(comparison, 'co2_kg', 'p1', 'p2'), null);
  assert.equal(differenceBetween(comparison, 'co2_kg', 'base', 'base'), null);
  assert.equal(differenceBetween(comparison, 'nox_kg', 'base', 'p1'), null);
});

test('the mapped plan is the non-baseline scenario, else B', () => {
  assert.equal(mappedPlan(comparison, 'base', 'p2').plan, 'p2');
  assert.equal(mappedPlan(comparison, 'p1', 'base').plan, 'p1');
  assert.match(mappedPlan(comparison, 'p1', 'p2').note, /compared with the baseline base/);
  assert.equal(mappedPlan(comparison, 'p1', 'p1'), null);
});

test('KPI names carry their unit once; shares become percentages', () => {
  assert.deepEqual(kpiDisplay({ kpi: 'mean_travel_time_s', unit: 's' }), { label: 'Mean travel time (s)', scale: 1, diffUnit: '' });
  assert.equal(kpiDisplay({ kpi: 'co2_kg', unit: 'kg' }).label, 'CO2 (kg)');
  assert.equal(kpiDisplay({ kpi: 'mean_noise_db', unit: 'dB(A)' }).label, 'Mean noise (dB(A))');
  assert.equal(kpiDisplay({ kpi: 'vehicle_km', unit: 'km', label: 'Vehicle-kilometres' }).label, 'Vehicle-kilometres (km)');
  assert.deepEqual(kpiDisplay({ kpi: 'share_car', unit: 'share', label: 'Car share of trips' }), { label: 'Car share of trips (%)', scale: 100, diffUnit: ' pp' });
  assert.equal(kpiDisplay({ kpi: 'heating_mwh', unit: 'MWh' }).label, 'Heating (MWh)');
  assert.equal(kpiDisplay({ kpi: 'teleports', unit: 'vehicles', label: 'Teleported vehicles' }).label, 'Teleported vehicles (vehicles)');
  assert.equal(kpiDisplay({ kpi: 'trips', unit: '' }).label, 'Trips');
});

test('KPIs are grouped by engine in the order they come, one row per KPI', () => {
  const kpis = [
    { engine: 'traffic', kpi: 'co2_kg', scenario: 'base' }, { engine: 'traffic', kpi: 'co2_kg', scenario: 'p1' },
    { engine: 'energy', kpi: 'heating_mwh', scenario: 'base' }, { engine: 'traffic', kpi: 'vehicle_km', scenario: 'base' },
  ];
  assert.deepEqual(kpisByEngine({ kpis }).map((g) => [g.engine, g.rows.map((r) => r.kpi)]), [
    ['traffic', ['co2_kg', 'vehicle_km']], ['energy', ['heating_mwh']],
  ]);
});

test('tables: value columns by id, and a change is coloured only beyond noise', () => {
  const c = { tables: [{ id: 'energy.buildings', values: [{ column: 'heating_kwh', unit: 'kWh' }] }] };
  assert.deepEqual(tableValues(c, 'energy.buildings'), [{ column: 'heating_kwh', unit: 'kWh' }]);
  assert.deepEqual(tableValues(c, 'traffic.edges'), []);
  assert.equal(changeClass({ flow_diff: -3, flow_real: true }, 'flow'), 'real');
  assert.equal(changeClass({ flow_diff: -3, flow_real: false }, 'flow'), 'noise');
  assert.equal(changeClass({ flow_diff: null, flow_real: false }, 'flow'), 'none');
  assert.equal(changeClass({ flow_diff: 2 }, 'flow'), 'real');
  assert.equal(columnLabel('speed_ms', 'm/s'), 'Speed (m/s)');
  assert.equal(columnLabel('heat_kwh', 'kWh'), 'Heat kwh (kWh)');
});

test('numbers for people', () => {
  assert.equal(formatNumber(1234.567), '1,235');
  assert.equal(formatNumber(12.345), '12.3');
  assert.equal(formatNumber(1.2345), '1.23');
  assert.equal(formatNumber(-29), '−29');
  assert.equal(formatNumber(null), '–');
  assert.equal(formatNumber(Number.NaN), '–');
  assert.equal(formatSigned(195), '+195');
  assert.equal(formatSigned(-0.5), '−0.5');
  assert.equal(formatSigned(0), '0');
  assert.equal(formatValue('osm_id', 168361), '168361');
  assert.equal(formatValue('height_m', 24.456), '24.5');
});

test('field names for people', () => {
  assert.equal(humanise('height_m'), 'Height (m)');
  assert.equal(humanise('floor_area_m2'), 'Floor area (m²)');
  assert.equal(humanise('speed_ms'), 'Speed (m/s)');
  assert.equal(humanise('poi_shop'), 'POI shop');
  assert.equal(humanise('zone_id'), 'Zone ID');
  assert.equal(inSentence('flow'), 'flow');
  assert.equal(inSentence('co2_g'), 'CO2 (g)');
});

test('palettes: even samples, quantile classes, MapLibre expressions', () => {
  assert.deepEqual(sample(VIRIDIS, 3), [VIRIDIS[0], VIRIDIS[4], VIRIDIS[8]]);
  assert.deepEqual(sample(VIRIDIS, 9), VIRIDIS);
  // sorted values at ranks 2, 4, 6, 8 of 10 are 0 (the minimum: no class below it), 2, 4, 100
  assert.deepEqual(quantileBreaks([0, 0, 0, 1, 2, 3, 4, 5, 100, 200], 5), [2, 4, 100]);
  assert.deepEqual(quantileBreaks([7, 7, 7], 5), []);
  assert.deepEqual(quantileBreaks([], 5), []);
  assert.deepEqual(stepExpression(['get', 'x'], [10, 20], ['a', 'b', 'c']), ['step', ['get', 'x'], 'a', 10, 'b', 20, 'c']);
  const ramp = rampExpression(['get', 'x'], -4, 4, PUOR);
  assert.deepEqual(ramp.slice(0, 5), ['interpolate', ['linear'], ['get', 'x'], -4, PUOR[0]]);
  assert.deepEqual(ramp.slice(-2), [4, PUOR[8]]);
  assert.equal(ramp[3 + 2 * 4], 0, 'the diverging palette is centred on zero');
  assert.equal(ramp[4 + 2 * 4], '#f6f6f7');
  assert.equal(rampExpression(['get', 'x'], 5, 5, VIRIDIS), VIRIDIS[4]);
});

test('chart ticks are round numbers covering the range', () => {
  assert.deepEqual(niceTicks(320, 681), [400, 500, 600]);
  assert.deepEqual(niceTicks(0, 1), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(niceTicks(-30.2, 39.2), [-20, 0, 20]);
  assert.deepEqual(niceTicks(5, 5), [5]);
});
