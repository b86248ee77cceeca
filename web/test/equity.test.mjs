// Tests of the scenario page's equity view, from a hand-made view in the API's shape.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { equityCells, equityGroups, notBrokenDownLine } from '../src/equity.js';

const row = (grouping, group, plan, extra = {}) => ({
  engine: 'traffic', table: 'zones', value: 'vehicle_km', unit: 'km', grouping, group, zones: 3, residents: 1200,
  plan, base_mean: 32, plan_mean: 27, diff: -5, ci_low: -7.3, ci_high: -2.7, distinguishable: true, words: '', ...extra,
});

const view = {
  groups: { income: ['1 of 2 (lowest): 9–12', '2 of 2 (highest): 12–20'] },
  rows: [
    row('income', '1 of 2 (lowest): 9–12', 'close'),
    row('income', '2 of 2 (highest): 12–20', 'close', { diff: 0.5, ci_low: null, ci_high: null, distinguishable: false }),
    row('age65', '1 of 2 (lowest): 0.1–0.2', 'close'),
    row('income', '1 of 2 (lowest): 9–12', 'zone30'),
  ],
  not_broken_down: { share_car: 'one number per seed', mean_travel_time_s: 'one number per seed' },
};

test('rows of one plan, grouped by grouping in order', () => {
  const groups = equityGroups(view, 'close');
  assert.deepEqual(groups.map((g) => [g.grouping, g.rows.length]), [['income', 2], ['age65', 1]]);
});

test('a row says the change with its interval, or that it is within noise', () => {
  assert.deepEqual(equityCells(view.rows[0]), [
    'Vehicle km (km)', '1 of 2 (lowest): 9–12', '3', '1,200', '32', '27', '−5 (−7.3 to −2.7)',
  ]);
  assert.equal(equityCells(view.rows[1])[6], '+0.5 (no interval), within noise');
});

test('the KPIs without a breakdown are named', () => {
  assert.equal(
    notBrokenDownLine(view),
    'Not broken down (one number per seed for the whole twin, no value per zone): Share car, Mean travel time (s).',
  );
  assert.equal(notBrokenDownLine({ rows: [] }), null);
});
