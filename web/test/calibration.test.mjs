// Tests of the calibration view's pure functions: the GEH colour scale and the fit in words.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GEH_COLOURS, NO_GEH, fitSentence, gehColourExpression, misfitSites } from '../src/calibration.js';
import { PUOR } from '../src/palettes.js';

const site = (name, geh, street = '') => ({ type: 'Feature', properties: { site: name, geh, street } });

const record = {
  meets_dmrb: false,
  fit_before: { site_hours: 4, share_geh_ok: 0.25 },
  fit_after: { site_hours: 4, share_geh_ok: 0.5 },
  held_back_after: { site_hours: 2, share_geh_ok: 0.5 },
  sites: { features: [site('A', 0), site('B', 8.165, 'Kaivokatu'), site('C', 0.67), site('D', 12.34), site('X', null)] },
};

test('the GEH scale is a threshold scale diverging at 5, purple below and orange above, grey without a GEH', () => {
  assert.deepEqual(GEH_COLOURS, [PUOR[1], PUOR[2], PUOR[6], PUOR[8]]);
  assert.deepEqual(gehColourExpression(), [
    'case', ['==', ['typeof', ['get', 'geh']], 'number'],
    ['step', ['get', 'geh'], PUOR[1], 2.5, PUOR[2], 5, PUOR[6], 10, PUOR[8]],
    NO_GEH,
  ]);
});

test('the sites that do not fit, worst first', () => {
  assert.deepEqual(misfitSites(record.sites), ['D (GEH 12.3)', 'Kaivokatu B (GEH 8.2)']);
  assert.deepEqual(misfitSites(undefined), []);
});

test('the fit in words: the DMRB verdict, before and after, held back, where it does not fit', () => {
  assert.equal(
    fitSentence(record),
    'The model does not meet the DMRB criterion (GEH < 5 at 85% of count site-hours): 50% of 4 site-hours after calibration, 25% before. '
      + 'On sites held back from the calibration: 50% of 2 site-hours. It does not fit at D (GEH 12.3), Kaivokatu B (GEH 8.2).',
  );
  const good = { ...record, meets_dmrb: true, fit_after: { site_hours: 10, share_geh_ok: 0.9 }, held_back_after: null, sites: { features: [] } };
  assert.equal(
    fitSentence(good),
    'The model meets the DMRB criterion (GEH < 5 at 85% of count site-hours): 90% of 10 site-hours after calibration, 25% before. No sites were held back to validate it.',
  );
  assert.match(fitSentence(null), /^The traffic demand is uncalibrated/);
});
