// Tests of what the consultation page's script says and asks, from answers in the API's shape.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { changeColour, nearItems, nearQuery } from '../src/consultText.js';

test('the near-me answer reads one line per mapped table', () => {
  const answer = {
    tables: [
      { label: 'Street edges', sentence: '2 within 300 m, of which 2 change beyond run-to-run noise.' },
      { label: 'Buildings', sentence: 'none within 300 m of this place.' },
    ],
  };
  assert.deepEqual(nearItems(answer), [
    'Street edges: 2 within 300 m, of which 2 change beyond run-to-run noise.',
    'Buildings: none within 300 m of this place.',
  ]);
  assert.deepEqual(nearItems({ tables: [] }), ['Nothing of this comparison can be placed on the map.']);
});

test('the shareable query names the plan first, then the place', () => {
  assert.equal(nearQuery('zone30', { address: 'Mannerheimintie 5' }), 'plan=zone30&address=Mannerheimintie+5');
  assert.equal(nearQuery('close main', { lon: '24.942000', lat: '60.171024' }), 'plan=close+main&lon=24.942000&lat=60.171024');
});

test('changes are orange when more, purple when less, grey within noise', () => {
  const expression = changeColour('vehicles');
  assert.deepEqual(expression.slice(0, 3), ['case', ['!=', ['get', 'vehicles_real'], true], '#9e9e9e']);
  assert.equal(expression[4], '#ef9e3c');
  assert.equal(expression[6], '#5d3790');
});
