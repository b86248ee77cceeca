// Tests of what the "Propose a scenario" panel says and sends, from answers in the API's shape.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setLanguage, t } from '../src/i18n.js';
import {
  polygonWkt, problemLine, problemsFor, proposalBody, proposalHeading, resultRows,
  settingInput, settingValue, staffActions, staffLine, stateWords,
} from '../src/proposeText.js';

setLanguage('en');

test('a drawn area becomes a closed WKT polygon with six decimals, and needs three corners', () => {
  assert.equal(polygonWkt([[24.9412345, 60.17], [24.95, 60.17], [24.95, 60.18]]),
    'POLYGON ((24.941235 60.170000, 24.950000 60.170000, 24.950000 60.180000, 24.941235 60.170000))');
  assert.equal(polygonWkt([[24.94, 60.17], [24.95, 60.17]]), '');
});

test('the body carries each intervention with its place and settings, and consent only when sending', () => {
  const items = [
    { type: 'speed_limit', osmIds: [202, 201], corners: [], settings: { speed_kmh: 30, only_lower: true } },
    { type: 'plant_trees_in_area', osmIds: [], corners: [[1, 2], [3, 2], [3, 4]], settings: { count: 12, canopy_share: undefined } },
  ];
  const draft = proposalBody({ title: '  Thirty on Kaivokatu ', description: ' ', items });
  assert.deepEqual(draft, {
    title: 'Thirty on Kaivokatu',
    interventions: [
      { type: 'speed_limit', osm_ids: [202, 201], speed_kmh: 30, only_lower: true },
      { type: 'plant_trees_in_area', polygon: 'POLYGON ((1.000000 2.000000, 3.000000 2.000000, 3.000000 4.000000, 1.000000 2.000000))', count: 12 },
    ],
  });
  assert.equal(proposalBody({ title: 'x', description: 'Why', items: [] }, true).consent, true);
  assert.equal(proposalBody({ title: 'x', description: 'Why', items: [] }, true).description, 'Why');
});

test('settings become inputs from their schema, and values typed as the API wants', () => {
  assert.deepEqual(settingInput('speed_kmh', { type: 'number', exclusiveMinimum: 0, maximum: 200, optional: false }),
    { kind: 'number', label: 'speed kmh', min: 0, max: 200, step: 'any', value: '' });
  assert.deepEqual(settingInput('lanes', { type: 'integer', minimum: 1, maximum: 4, default: 1 }),
    { kind: 'number', label: 'lanes', min: 1, max: 4, step: 1, value: 1 });
  assert.deepEqual(settingInput('keep', { type: 'string', enum: ['forward', 'reverse'], default: 'forward' }),
    { kind: 'select', label: 'keep', options: ['forward', 'reverse'], optionLabels: ['forward', 'reverse'], value: 'forward' });
  // The menu's words in the page's language, as the server sends them (setting_labels, choice_labels).
  assert.deepEqual(settingInput('keep', { type: 'string', enum: ['forward', 'reverse'], default: 'forward' },
    { label: 'ponechaný smer', choices: { forward: 'v smere zakreslenia v OpenStreetMap', reverse: 'proti smeru zakreslenia' } }),
  { kind: 'select', label: 'ponechaný smer', options: ['forward', 'reverse'],
    optionLabels: ['v smere zakreslenia v OpenStreetMap', 'proti smeru zakreslenia'], value: 'forward' });
  assert.equal(settingInput('speed_kmh', { type: 'number' }, { label: 'rýchlosť (km/h)' }).label, 'rýchlosť (km/h)');
  assert.deepEqual(settingInput('only_lower', { type: 'boolean', default: true }), { kind: 'checkbox', label: 'only lower', value: true });
  assert.equal(settingValue({ type: 'number' }, '30'), 30);
  assert.equal(settingValue({ type: 'number' }, ''), undefined);
  assert.equal(settingValue({ type: 'boolean' }, 0), false);
  assert.equal(settingValue({ type: 'string' }, 'reverse'), 'reverse');
});

test('problems are sorted to their intervention and read as lines', () => {
  const problems = [
    { field: 'title', message: 'at least 3 characters' },
    { field: 'interventions[0].streets', message: 'the selected street carries no cars (not drivable): choose a street cars use' },
    { field: 'interventions[1]', message: 'expected an object with a type' },
    { field: 'interventions[10].speed_kmh', message: 'Input should be greater than 0' },
  ];
  assert.deepEqual(problemsFor(problems, null).map(problemLine), ['title: at least 3 characters']);
  assert.deepEqual(problemsFor(problems, 1).map(problemLine), ['Intervention 2: expected an object with a type']);
  assert.deepEqual(problemsFor(problems, 10).map(problemLine), ['Intervention 11, speed kmh: Input should be greater than 0']);
  const settingLabel = (index, key) => (index === 10 && key === 'speed_kmh' ? 'speed (km/h)' : undefined);
  assert.deepEqual(problemsFor(problems, 10).map((p) => problemLine(p, { settingLabel })),
    ['Intervention 11, speed (km/h): Input should be greater than 0']);
  assert.deepEqual(problemsFor(problems, 0).map(problemLine),
    ['Intervention 1, streets: the selected street carries no cars (not drivable): choose a street cars use']);
});

test('a result sits beside the official scenarios, KPI by KPI', () => {
  const official = [{ kpi: 'mean_travel_time_s', values: [
    { scenario: 'baseline', text: '348 (321 to 375)' }, { scenario: 'zone30', text: '353 (330 to 375)' }] }];
  const result = { kpis: [
    { kpi: 'mean_travel_time_s', label: 'Mean car travel time', value: { text: '371 (352 to 390)' }, change: { words: 'Mean car travel time rises by 7%.' } },
    { kpi: 'co2_kg', label: 'CO2', value: null, change: null },
  ] };
  assert.deepEqual(resultRows(official, result), [
    { kpi: 'mean_travel_time_s', label: 'Mean car travel time', official: [
      { scenario: 'baseline', text: '348 (321 to 375)' }, { scenario: 'zone30', text: '353 (330 to 375)' }],
    proposal: '371 (352 to 390)', change: 'Mean car travel time rises by 7%.' },
    { kpi: 'co2_kg', label: 'CO2', official: [], proposal: '–', change: '–' },
  ]);
});

test('states, headings and staff lines read as words, and staff actions follow the state', () => {
  assert.equal(stateWords('queued'), 'approved, waiting for its run');
  assert.equal(proposalHeading({ title: 'Thirty', pseudonym: 'Resident K7Q2XM', date: '2026-12-10', state: 'done' }),
    'Thirty, by Resident K7Q2XM · 10 December 2026 · simulated');
  assert.equal(staffLine({ id: 3, state: 'failed', title: 'T', pseudonym: 'Resident A', reason: 'ok', outcome: 'error: x' }),
    '#3 T (Resident A): the simulation failed · reason: ok; run: error: x');
  assert.deepEqual(staffActions('submitted'), ['approve', 'reject']);
  assert.deepEqual(staffActions('running'), ['cancel']);
  assert.deepEqual(staffActions('done'), []);
  assert.deepEqual(['approve', 'reject', 'cancel'].map((action) => t(`proposal.${action}`)), ['Approve and queue', 'Reject', 'Cancel the run']);
  assert.deepEqual([1, 3].map((count) => t('proposal.streetsChosen', { count })), ['1 street chosen', '3 streets chosen']);
  assert.equal(t('proposal.sent', { pseudonym: 'Resident A', id: 4 }), 'Thank you, Resident A: your proposal (number 4) is waiting for staff review.');
  assert.equal(t('proposal.deletionCode', { code: 'del_x' }), 'Your deletion code (keep it to delete your proposal; it is shown only now): del_x');
});

test('the panel in Slovak and Italian: plural forms, states and dates per language', () => {
  setLanguage('sk');
  assert.deepEqual([1, 3, 5].map((count) => t('proposal.streetsChosen', { count })), ['1 vybraná ulica', '3 vybrané ulice', '5 vybraných ulíc']);
  assert.equal(proposalHeading({ title: 'Tridsiatka', pseudonym: 'Resident K7Q2XM', date: '2026-12-10', state: 'done' }),
    'Tridsiatka, autor: Resident K7Q2XM · 10. decembra 2026 · nasimulovaný');
  assert.equal(problemLine({ field: 'interventions[0].speed_kmh', message: 'x' }), 'Opatrenie 1, speed kmh: x');
  setLanguage('it');
  assert.deepEqual([1, 2].map((count) => t('proposal.cornersChosen', { count })), ['1 angolo', '2 angoli']);
  assert.equal(stateWords('queued'), 'approvata, in attesa della simulazione');
  assert.equal(stateWords('mystery'), 'mystery');
  setLanguage('en');
});
