// Tests of what the "Have your say" section says and sends, from answers in the API's shape.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import {
  contributionBody, contributionHeading, countLines, leadingZeroBits, openingLine, solveChallenge,
} from '../src/contributeText.js';

const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));

test('leading zero bits are counted across bytes', () => {
  assert.equal(leadingZeroBits(new Uint8Array([0, 0, 0x10, 0xff])), 19);
  assert.equal(leadingZeroBits(new Uint8Array([0x80])), 0);
  assert.equal(leadingZeroBits(new Uint8Array([0, 0])), 16);
});

test('a solved challenge satisfies the server rule (SHA-256 of challenge:nonce)', async () => {
  const challenge = 'consult-public.1798761600.8.abc.def';
  const nonce = await solveChallenge(challenge, 8, sha256);
  const digest = createHash('sha256').update(`${challenge}:${nonce}`).digest();
  assert.equal(digest[0], 0);
  for (let earlier = 0; earlier < Number(nonce); earlier += 1) {
    assert.notEqual(createHash('sha256').update(`${challenge}:${earlier}`).digest()[0], 0);
  }
});

test('the body carries only what was given, with consent and the proof', () => {
  const proof = { challenge: 'c', nonce: '7' };
  assert.deepEqual(contributionBody({ consent: true, scenario: 'zone30', theme: 'safety', vote: '', text: '  Safer  ' }, proof),
    { consent: true, scenario: 'zone30', theme: 'safety', challenge: 'c', nonce: '7', text: 'Safer' });
  assert.deepEqual(contributionBody({ consent: false, scenario: 'baseline', theme: 'noise', vote: 'against', text: '', place: { lon: 24.94123456, lat: 60.1712 } }, proof),
    { consent: false, scenario: 'baseline', theme: 'noise', challenge: 'c', nonce: '7', vote: 'against', lon: 24.941235, lat: 60.1712 });
});

test('counts and headings read as sentences', () => {
  assert.deepEqual(countLines({ baseline: { for: 0, against: 0, comments: 0 }, zone30: { for: 2, against: 1, comments: 1 } }),
    ['baseline: 0 for, 0 against, 0 comments', 'zone30: 2 for, 1 against, 1 comment']);
  assert.equal(contributionHeading({ pseudonym: 'Resident K7Q2XM', scenario: 'zone30', theme: 'safety', vote: 'for', date: '2026-12-10' }),
    'Resident K7Q2XM on zone30 (safety), for · 10 December 2026');
  assert.equal(contributionHeading({ pseudonym: 'anonymised', scenario: 'zone30', theme: 'noise', vote: null, date: '2026-12-10' }),
    'anonymised on zone30 (noise) · 10 December 2026');
});

test('the opening line says open, not yet, or closed', () => {
  const times = { opens: '2026-12-01T00:00:00+00:00', closes: '2026-12-31T00:00:00+00:00' };
  assert.equal(openingLine({ ...times, open: true }), 'Open for comments and votes until 31 December 2026.');
  assert.equal(openingLine({ ...times, open: false }, new Date('2026-11-30')), 'Comments and votes open on 1 December 2026.');
  assert.equal(openingLine({ ...times, open: false }, new Date('2027-01-02')), 'This consultation closed on 31 December 2026; comments are no longer taken.');
});
