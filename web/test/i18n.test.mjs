// Tests of the viewer's languages: every *Text.js catalogue complete in every language (same keys,
// same {placeholders}, the plural forms each language needs), the language chosen from the browser
// or the switcher, and numbers, dates and plural forms per locale against hand-written strings.

import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fitSentence } from '../src/calibration.js';
import { countLines, contributionHeading, openingLine } from '../src/contributeText.js';
import { equityCells } from '../src/equity.js';
import { LANGUAGES, chooseLanguage, formatDate, setLanguage, t } from '../src/i18n.js';
import { engineLabel, kpiDisplay } from '../src/kpi.js';
import { levelLine } from '../src/readiness.js';
import { describe } from '../src/timeSeries.js';
import { formatNumber, formatSigned } from '../src/ui.js';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
const NBSP = '\u00a0';

/** Every module of the viewer with a message catalogue: the *Text.js modules. */
async function catalogues() {
  const names = (await readdir(SRC)).filter((name) => /Text\.js$/.test(name)).sort();
  return Promise.all(names.map(async (name) => ({ name, messages: (await import(new URL(name, `file://${SRC}`))).MESSAGES })));
}

const placeholders = (text) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test('every *Text.js module has a complete catalogue in every language', async () => {
  const modules = await catalogues();
  assert.ok(modules.length >= 3, 'viewerText.js, consultText.js and contributeText.js at least');
  const owner = new Map();
  const problems = [];
  for (const { name, messages } of modules) {
    if (!messages) { problems.push(`${name}: exports no MESSAGES`); continue; }
    const english = messages.en;
    for (const key of Object.keys(english)) {
      if (owner.has(key)) problems.push(`${key}: in ${owner.get(key)} and ${name}`);
      owner.set(key, name);
    }
    for (const code of Object.keys(LANGUAGES)) {
      const catalogue = messages[code] || {};
      const categories = new Intl.PluralRules(code).resolvedOptions().pluralCategories.sort();
      for (const key of Object.keys(english)) if (!(key in catalogue)) problems.push(`${name} ${code}: missing ${key}`);
      for (const [key, message] of Object.entries(catalogue)) {
        if (!(key in english)) { problems.push(`${name} ${code}: extra ${key}`); continue; }
        const source = english[key];
        if (typeof source !== typeof message) { problems.push(`${name} ${code}: ${key} plural in one language only`); continue; }
        if (typeof message === 'object') {
          const own = Object.keys(message).sort();
          const wanted = code === 'en' ? own : categories;
          if (own.join() !== wanted.join()) problems.push(`${name} ${code}: ${key} has forms ${own}, ${code} needs ${wanted}`);
          for (const form of own) {
            if (placeholders(message[form]).join() !== placeholders(source.other).join()) problems.push(`${name} ${code}: ${key}.${form} placeholders`);
          }
        } else if (!message.trim()) {
          problems.push(`${name} ${code}: ${key} is empty`);
        } else if (placeholders(message).join() !== placeholders(source).join()) {
          problems.push(`${name} ${code}: ${key} has {${placeholders(message)}}, English {${placeholders(source)}}`);
        }
      }
    }
  }
  assert.deepEqual(problems, []);
});

test('the language: the stored choice, else the first offered browser language, else English', () => {
  assert.equal(chooseLanguage({ stored: 'it', preferred: ['sk-SK', 'en'] }), 'it');
  assert.equal(chooseLanguage({ stored: null, preferred: ['de-AT', 'sk-SK', 'it'] }), 'sk');
  assert.equal(chooseLanguage({ stored: 'xx', preferred: ['it-CH'] }), 'it');
  assert.equal(chooseLanguage({ stored: null, preferred: ['fr'] }), 'en');
  assert.equal(setLanguage('pt'), 'en');
});

test('numbers, signed changes and dates follow the locale', () => {
  setLanguage('sk');
  assert.deepEqual([formatNumber(2.4), formatNumber(1234.5), formatSigned(-3.1), formatDate('2026-12-01T00:00:00Z')],
    ['2,4', `1${NBSP}235`, '−3,1', '1. decembra 2026']);
  setLanguage('it');
  assert.deepEqual([formatNumber(2.4), formatNumber(12345.5), formatSigned(-3.1), formatDate('2026-12-01')],
    ['2,4', '12.346', '−3,1', '1 dicembre 2026']);
  setLanguage('en');
  assert.deepEqual([formatNumber(2.4), formatNumber(1234.5), formatDate('2026-12-01')], ['2.4', '1,235', '1 December 2026']);
});

test('plural forms: Slovak has one, few (2–4), many (fractions) and other (0, 5 and more)', () => {
  setLanguage('sk');
  assert.deepEqual([0, 1, 2, 4, 5, 22].map((count) => t('say.comments', { count })),
    ['0 komentárov', '1 komentár', '2 komentáre', '4 komentáre', '5 komentárov', '22 komentárov']);
  assert.deepEqual([1, 3, 7].map((count) => t('readiness.days', { count })), ['1 deň', '3 dni', '7 dní']);
  setLanguage('it');
  assert.deepEqual([0, 1, 2].map((count) => t('say.comments', { count })), ['0 commenti', '1 commento', '2 commenti']);
  setLanguage('en');
});

test('the consultation section and the scenario page speak Slovak and Italian', () => {
  const counts = { zone30: { for: 2, against: 1, comments: 2 }, baseline: { for: 0, against: 0, comments: 5 } };
  const times = { opens: '2026-12-01T00:00:00+00:00', closes: '2026-12-31T00:00:00+00:00', open: true };
  const c = { pseudonym: 'Resident K7Q2XM', scenario: 'zone30', theme: 'safety', vote: 'for', date: '2026-12-10' };
  setLanguage('sk');
  assert.deepEqual(countLines(counts), ['zone30: 2 za, 1 proti, 2 komentáre', 'baseline: 0 za, 0 proti, 5 komentárov']);
  assert.equal(openingLine(times), 'Komentáre a hlasovanie sú otvorené do 31. decembra 2026.');
  assert.equal(contributionHeading(c), 'Resident K7Q2XM k scenáru zone30 (safety), za · 10. decembra 2026');
  assert.deepEqual(kpiDisplay({ kpi: 'share_car', unit: 'share', label: 'Car share of trips' }), { label: 'Podiel ciest autom (%)', scale: 100, diffUnit: ' p. b.' });
  assert.equal(levelLine({ maturity: 2, maturity_name: 'informative' }).next, 'Na dosiahnutie úrovne 3 (prediktívna)');
  assert.equal(engineLabel('table', 'Street edges: cars, speed, CO2 and noise'), 'Úseky ulíc: autá, rýchlosť, CO2 a hluk');
  assert.equal(engineLabel('table', 'A city table'), 'A city table');  // not in the catalogue: as the engine says it
  setLanguage('it');
  assert.deepEqual(countLines(counts), ['zone30: 2 a favore, 1 contro, 2 commenti', 'baseline: 0 a favore, 0 contro, 5 commenti']);
  assert.equal(openingLine(times), 'Aperta a commenti e voti fino al 31 dicembre 2026.');
  assert.equal(equityCells({ value: 'noise_db', unit: 'dB', group: 'Q1', zones: 3, residents: 1250, base_mean: 55.25, plan_mean: 53.5, diff: -1.75, ci_low: -2.5, ci_high: -1, distinguishable: false }).at(-1),
    '−1,75 (da −2,5 a −1), entro la variabilità');
  assert.equal(fitSentence(null), 'La domanda di traffico non è calibrata: i suoi flussi simulati non sono stati confrontati con alcun conteggio osservato.');
  setLanguage('en');
});

test('a sensor chart is described in Slovak, its times kept in UTC', () => {
  setLanguage('sk');
  const text = describe({
    datastream: { name: 'NO2 Köln', unit: 'ug/m3', unit_symbol: 'µg/m³' },
    observations: [[Date.parse('2026-03-01T09:00:00Z'), 180.5], [Date.parse('2026-03-01T10:00:00Z'), 250]],
    limits: [{ rule: 'no2_high', severity: 'critical', above: 200, below: null, applies_to: 'value' }],
    alerts: [],
  });
  assert.equal(text, 'NO2 Köln, v µg/m³. 2 pozorovania od 2026-03-01 09:00 UTC do 2026-03-01 10:00 UTC; najnižšie 181, najvyššie 250, posledné 250.'
    + ' Pravidlo no2_high (kritické) sa spustí, keď je hodnota nad 200 µg/m³.');
  setLanguage('en');
});
