// Tests of what the survey form and the moderation page say and send, from answers in the API's shape.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setLanguage, t } from '../src/i18n.js';
import {
  megabytes, observationFields, observationHeading, photoPlan, placeLine, shrunkSize,
} from '../src/surveyText.js';
import {
  KINDS, STATUSES, decidedLine, decisionBody, itemHeading, itemPlace, linkOf, pageLine, phaseLine, queueQuery,
} from '../src/moderationText.js';

setLanguage('en');

test('the form sends its fields in order, the place to 6 decimals, the text trimmed', () => {
  const fields = observationFields(
    { consent: true, category: 'pothole', text: '  Deep hole  ', place: { lon: 24.94123456, lat: 60.1712 } },
    { challenge: 'c.1', nonce: '42' },
  );
  assert.deepEqual(fields, [['consent', 'true'], ['category', 'pothole'], ['text', 'Deep hole'], ['lon', '24.941235'],
    ['lat', '60.171200'], ['challenge', 'c.1'], ['nonce', '42']]);
  assert.equal(observationFields({ consent: false, category: 'x', text: undefined, place: { lon: 0, lat: 0 } }, { challenge: '', nonce: '' })[0][1], 'false');
});

test('a photo is sent as it is within the limit and shrunk to 2048 px beyond it', () => {
  assert.equal(photoPlan(0, 1000), 'none');
  assert.equal(photoPlan(1000, 1000), 'as-is');
  assert.equal(photoPlan(1001, 1000), 'shrink');
  assert.deepEqual(shrunkSize(4032, 3024), { width: 2048, height: 1536 });  // 3024 × 2048 / 4032 = 1536
  assert.deepEqual(shrunkSize(3000, 4000), { width: 1536, height: 2048 });
  assert.deepEqual(shrunkSize(800, 600), { width: 800, height: 600 });  // never enlarged
  assert.equal(megabytes(8388608), '8.0 MB');
  assert.equal(t('survey.photoTooLarge', { size: megabytes(983040) }), 'The photo is too large even when made smaller: at most 0.9 MB are accepted.');
});

test('places and approved observations read as text', () => {
  assert.equal(placeLine({ lon: 24.9412, lat: 60.1712 }), '60.17120° N, 24.94120° E');
  assert.equal(placeLine({ lon: -58.38, lat: -34.6037 }), '34.60370° S, 58.38000° W');
  assert.equal(observationHeading({ category: 'pothole', date: '2026-12-10' }), 'pothole · 10 December 2026');
  assert.equal(t('survey.thanks', { pseudonym: 'Resident K7Q2XM' }), 'Thank you, Resident K7Q2XM: your observation is waiting for a moderator.');
});

test('the moderation queue is asked for a page at a time', () => {
  assert.equal(queueQuery({ status: 'pending', kind: '' }), 'status=pending&limit=20&offset=0');
  assert.equal(queueQuery({ status: 'approved', kind: 'observation', offset: 40 }), 'status=approved&kind=observation&limit=20&offset=40');
  assert.equal(pageLine({ total: 45, offset: 20, count: 20 }), 'Items 21–40 of 45');
  assert.equal(pageLine({ total: 0, offset: 0, count: 0 }), '0 items');
  const links = [{ rel: 'next', href: 'http://x/m?offset=20' }];
  assert.equal(linkOf(links, 'next'), 'http://x/m?offset=20');
  assert.equal(linkOf(links, 'prev'), null);
  assert.equal(linkOf(undefined, 'next'), null);
});

test('moderation items say what they are; a decision needs a reason', () => {
  const comment = { id: 12, kind: 'comment', pseudonym: 'Resident K7Q2XM', scenario: 'zone30', theme: 'safety', vote: 'for',
    created: '2026-12-10T12:00:00+00:00', lon: null, lat: null };
  assert.equal(itemHeading(comment), '#12 · Resident K7Q2XM · comment on zone30 (safety), for · 10 December 2026');
  assert.equal(itemPlace(comment), '');
  const observation = { id: 13, kind: 'observation', pseudonym: 'Resident B2C3D4', scenario: '', theme: 'pothole', vote: null,
    created: '2026-12-11T08:00:00+00:00', lon: 24.9412, lat: 60.1712 };
  assert.equal(itemHeading(observation), '#13 · Resident B2C3D4 · observation: pothole · 11 December 2026');
  assert.equal(itemPlace(observation), 'at 60.17120, 24.94120 (lat, lon)');
  assert.equal(decisionBody('approve', '   '), null);
  assert.deepEqual(decisionBody('reject', ' personal data '), { decision: 'reject', reason: 'personal data' });
  assert.equal(decidedLine('approved', 'on topic'), 'Approved: on topic');
  assert.equal(phaseLine(false, '2027-01-07T00:00:00+00:00'), 'Closed for contributions; moderation possible until 7 January 2027.');
  assert.deepEqual([...STATUSES, ...KINDS].map(([value, key]) => [value, t(key)]), [['pending', 'Waiting for a decision'],
    ['approved', 'Approved'], ['rejected', 'Rejected'], ['', 'Everything'], ['comment', 'Comments and votes'], ['observation', 'Survey observations']]);
});

test('the survey form and the moderation page in Slovak and Italian: decimal commas, plural forms, dates', () => {
  const NBSP = '\u00a0';
  setLanguage('sk');
  assert.equal(megabytes(8388608), '8,0 MB');
  assert.equal(placeLine({ lon: 17.1077, lat: 48.1486 }), '48,14860° s. š., 17,10770° v. d.');
  assert.equal(observationHeading({ category: 'výtlk', date: '2026-12-10' }), 'výtlk · 10. decembra 2026');
  assert.deepEqual([1, 3, 5].map((total) => pageLine({ total, offset: 0, count: 0 })), ['1 položka', '3 položky', '5 položiek']);
  assert.equal(pageLine({ total: 1045, offset: 20, count: 20 }), `Položky 21–40 z 1${NBSP}045`);
  assert.equal(itemPlace({ lon: 17.1077, lat: 48.1486 }), 'poloha 48,14860; 17,10770 (zem. šírka; zem. dĺžka)');
  assert.equal(itemHeading({ id: 7, kind: 'comment', pseudonym: 'Resident A', scenario: 'zone30', theme: 'bezpečnosť', vote: 'against',
    created: '2026-12-10T12:00:00+00:00' }), '#7 · Resident A · komentár k scenáru zone30 (bezpečnosť), proti · 10. decembra 2026');
  setLanguage('it');
  assert.equal(placeLine({ lon: -58.38, lat: -34.6037 }), '34,60370° S, 58,38000° O');
  assert.equal(phaseLine(true, '2027-01-07T00:00:00+00:00'), 'Aperta ai contributi; moderazione possibile fino al 7 gennaio 2027.');
  assert.deepEqual([1, 2].map((total) => pageLine({ total, offset: 0, count: 0 })), ['1 elemento', '2 elementi']);
  assert.equal(t('survey.photoTooLarge', { size: megabytes(983040) }), 'La foto è troppo grande anche dopo la riduzione: si accettano al massimo 0,9 MB.');
  setLanguage('en');
});
