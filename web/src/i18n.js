// The viewer's languages (docs/viewer.md#languages): message catalogues in plain modules, the browser's
// own Intl APIs for plural forms, numbers and dates. No DOM work here except `translatePage`, which
// fills the static page's `data-i18n` elements.
//
// Each *Text.js module owns its messages: it exports `MESSAGES = { en: {...}, sk: {...}, it: {...} }`
// and calls `addMessages(MESSAGES)`; `npm test` checks that every language has exactly English's keys,
// the same {placeholders} and the plural forms the language needs.

/** Every language offered, each named in itself (as the switcher shows it). */
export const LANGUAGES = { en: 'English', sk: 'Slovenčina', it: 'Italiano' };

/** The language of the source messages, and the one chosen when nothing else matches. */
export const DEFAULT = 'en';

/** Where the switcher's choice is kept (localStorage: it persists across visits, on this device only). */
export const STORAGE_KEY = 'civictwin.lang';

// English is British in numbers and dates (the viewer's numbers have always been en-GB).
const INTL_LOCALE = { en: 'en-GB', sk: 'sk-SK', it: 'it-IT' };

const catalogues = Object.fromEntries(Object.keys(LANGUAGES).map((code) => [code, {}]));
let current = DEFAULT;

/** Add a module's messages (`{ en: {key: message}, sk: {...}, it: {...} }`) to the catalogues. */
export function addMessages(messages) {
  for (const code of Object.keys(LANGUAGES)) Object.assign(catalogues[code], messages[code] || {});
}

/** The offered language of a tag (`sk`, `sk-SK`, `it_IT`), or null. */
export function offered(tag) {
  const primary = String(tag || '').trim().replace('_', '-').split('-')[0].toLowerCase();
  return primary in LANGUAGES ? primary : null;
}

/** The viewer's language: the switcher's stored choice, else the first offered of the browser's languages. */
export function chooseLanguage({ stored = null, preferred = [] } = {}) {
  return offered(stored) || preferred.map(offered).find(Boolean) || DEFAULT;
}

/** Use `code` from now on (unknown codes fall back to English). */
export function setLanguage(code) {
  current = offered(code) || DEFAULT;
  return current;
}

/** The language in use. */
export function language() {
  return current;
}

/** The BCP 47 locale Intl formats with for the language in use. */
export function intlLocale() {
  return INTL_LOCALE[current];
}

/**
 * The message `key` in the language in use (English when missing there, the key itself when missing
 * everywhere), its `{name}` placeholders filled from `params`. A message may be plural: an object by
 * CLDR category (`one`, `few`, `many`, `other`), chosen for `params.count` by Intl.PluralRules; a count
 * shown with decimals passes `fractionDigits` (Slovak says "2,4 bodu", the form for fractions).
 */
export function t(key, params = {}) {
  let message = catalogues[current][key] ?? catalogues[DEFAULT][key] ?? key;
  if (typeof message === 'object') {
    const digits = params.fractionDigits ?? 0;
    const rules = new Intl.PluralRules(INTL_LOCALE[current], { minimumFractionDigits: digits, maximumFractionDigits: digits });
    message = message[rules.select(Number(params.count))] ?? message.other;
  }
  return message.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** A number in the language's format (Intl.NumberFormat options: fraction digits, style, ...). */
export function formatIntl(value, options = {}) {
  return new Intl.NumberFormat(INTL_LOCALE[current], options).format(value);
}

/** A day for people in the language's long form ("1 December 2026", "1. decembra 2026", "1 dicembre 2026"). */
export function formatDate(iso) {
  const day = new Date(`${String(iso).slice(0, 10)}T12:00:00Z`);
  return new Intl.DateTimeFormat(INTL_LOCALE[current], { dateStyle: 'long', timeZone: 'UTC' }).format(day);
}

/** A moment for people: day and time in the language's medium form, in the browser's time zone. */
export function formatDateTime(ms) {
  return new Intl.DateTimeFormat(INTL_LOCALE[current], { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(ms));
}

/**
 * Fill the static page's translatable elements: `data-i18n="key"` sets the text, `data-i18n-attr=
 * "aria-label:key;placeholder:key"` sets attributes; `<html lang>` names the language.
 */
export function translatePage(root) {
  root.documentElement.lang = current;
  for (const node of root.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of node.dataset.i18nAttr.split(';')) {
      const [attribute, key] = pair.split(':');
      node.setAttribute(attribute.trim(), t(key.trim()));
    }
  }
}
