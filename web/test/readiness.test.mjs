// Tests of what the readiness page shows, from a hand-made report in the API's shape.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kpiRows, levelLine, needRows, nextSteps } from '../src/readiness.js';

const need = (id, level, status, extra = {}) => ({
  id, kind: 'layer', target: id, level, what: `the ${id}`, status, met: status === 'present', details: [],
  quality: [], as_of: null, age_days: null, licence: null, access: null, steward: null, validation: null,
  how_to_get: status === 'present' ? null : `get ${id}`, ...extra,
});

const report = {
  maturity: 1,
  maturity_name: 'status',
  next_level: ['counts'],
  kpis: [{ name: 'co2_kg', engine: 'traffic', label: 'CO2 emissions', ready: false, needs: ['network', 'counts'], unmet: ['counts'] }],
  needs: [
    need('counts', 2, 'missing', { kind: 'datastream', target: 'traffic count', details: ["no datastream observes 'traffic count'"] }),
    need('network', 1, 'present', { licence: 'ODbL-1.0', access: 'public', as_of: '2022-06-01T00:00:00+00:00', age_days: 1644, quality: ['3 ways cut'] }),
  ],
};

test('the level and the next one', () => {
  assert.deepEqual(levelLine(report), { line: 'Level 1 of 4: status', next: 'To reach level 2 (informative)' });
  assert.equal(levelLine({ ...report, maturity: 4, maturity_name: 'optimisation' }).next, null);
});

test('next steps say what, why not, and how to get it', () => {
  assert.deepEqual(nextSteps(report), [{ what: 'the counts', status: 'missing', how: 'get counts' }]);
});

test('data rows are ordered by level and say what is held', () => {
  const rows = needRows(report);
  assert.deepEqual(rows.map((r) => r.status), ['present', 'missing']);
  assert.equal(rows[0].level, '1 (status)');
  assert.equal(rows[0].held, 'licence ODbL-1.0; access public');
  assert.equal(rows[0].asOf, '1 June 2022 (1644 days)');
  assert.equal(rows[0].notes, 'quality: 3 ways cut');
  assert.equal(rows[1].source, 'datastream traffic count');
  assert.equal(rows[1].held, '–');
  assert.equal(rows[1].notes, "no datastream observes 'traffic count'");
});

test('KPI rows', () => {
  assert.deepEqual(kpiRows(report), [{ kpi: 'CO2 emissions (co2_kg)', engine: 'traffic', ready: 'no', unmet: 'counts' }]);
});
