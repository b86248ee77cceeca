// Tests of the LoD2 view logic (lod2View.js): boxes computed by hand.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { boxOf, contains, grownBox, needsFetch, withBox } from '../src/lod2View.js';

test('a view is grown by half its width and height on every side, within the world', () => {
  assert.deepEqual(grownBox([24.9, 60.1, 25.0, 60.2]).map((v) => +v.toFixed(9)), [24.85, 60.05, 25.05, 60.25]);
  assert.deepEqual(grownBox([-179, 80, 179, 85]), [-180, 77.5, 180, 85.051129]);
  assert.deepEqual(grownBox([0, 0, 2, 2], 0), [0, 0, 2, 2]);
  const bounds = { getWest: () => 1, getSouth: () => 2, getEast: () => 3, getNorth: () => 4 };
  assert.deepEqual(boxOf(bounds), [1, 2, 3, 4]);
});

test('a view inside the fetched box needs nothing new unless the answer was cut', () => {
  const fetched = { box: [0, 0, 10, 10], truncated: false };
  assert.equal(contains(fetched.box, [1, 1, 9, 9]), true);
  assert.equal(contains(fetched.box, [0, 0, 10, 10]), true); // its edges count as inside
  assert.equal(needsFetch(fetched, [1, 1, 9, 9]), false);
  assert.equal(needsFetch(fetched, [5, 5, 11, 9]), true); // past the east edge
  assert.equal(needsFetch(fetched, [-1, 1, 9, 9]), true); // past the west edge
  assert.equal(needsFetch({ ...fetched, truncated: true }, [1, 1, 9, 9]), true);
  assert.equal(needsFetch(null, [1, 1, 9, 9]), true);
});

test('the box goes into the URL as the bbox parameter, keeping an absolute URL absolute', () => {
  assert.equal(withBox('http://h:8000/buildings/lod2.json', [24.5, 60, 25.25, 60.5]),
    'http://h:8000/buildings/lod2.json?bbox=24.500000%2C60.000000%2C25.250000%2C60.500000');
  assert.equal(withBox('/buildings/lod2.json?limit=5', [-1, -2, 3, 4]),
    '/buildings/lod2.json?limit=5&bbox=-1.000000%2C-2.000000%2C3.000000%2C4.000000');
});
