// The consultation page's "Have your say" section (docs/consultation.md#comments-and-votes): the
// approved comments and vote counts per scenario, and, while the consultation is open, a form with the
// consent text. Each contribution solves the server's proof-of-work challenge first (in the
// background, about a second) and is sent as same-origin JSON; the answer's deletion code is shown
// once. Everything from the server is put into the page as text, never as HTML.

import './contribute.css';
import { el } from './dom.js';
import { ApiError, getJsonAt } from './api.js';
import {
  contributionBody, contributionHeading, countLines, openingLine, solveChallenge,
} from './contributeText.js';
import { t } from './i18n.js';

const sha256 = async (bytes) => crypto.subtle.digest('SHA-256', bytes);

/** An element with attributes and children (strings become text nodes). */

function choice(name, label, values, required = true) {
  const id = `say-${name}`;
  const select = el('select', { id, name, required }, ...values.map(([value, text]) => el('option', { value }, text)));
  return el('p', {}, el('label', { for: id }, label), el('br'), select);
}

function published(data) {
  const items = data.contributions.map((c) => el('li', {}, el('strong', {}, contributionHeading(c)), c.text ? el('p', {}, c.text) : ''));
  return [
    el('h3', {}, t('say.votesSoFar')),
    el('ul', { class: 'say-counts' }, ...countLines(data.counts).map((line) => el('li', {}, line))),
    el('h3', {}, t('say.approved')),
    items.length ? el('ol', { class: 'say-comments' }, ...items) : el('p', {}, t('say.noComments')),
  ];
}

function form(data) {
  const scenarios = data.scenarios.map((s) => [s, s]);
  const themes = data.themes.map((t) => [t, t]);
  const votes = [['', t('say.noVote')], ['for', t('say.voteFor')], ['against', t('say.voteAgainst')]];
  return el('form', { class: 'say', novalidate: true },
    el('h3', {}, t('say.add')),
    el('p', { id: 'say-consent-text' }, data.consent),
    el('p', {}, el('input', { type: 'checkbox', id: 'say-consent', name: 'consent', required: true, 'aria-describedby': 'say-consent-text' }),
      ' ', el('label', { for: 'say-consent' }, t('say.agree'))),
    choice('scenario', t('say.scenario'), scenarios),
    choice('theme', t('say.theme'), themes),
    choice('vote', t('say.vote'), votes, false),
    el('p', {}, el('label', { for: 'say-text' }, t('say.text')), el('br'),
      el('textarea', { id: 'say-text', name: 'text', rows: 4, maxlength: 2000 })),
    el('p', {}, el('input', { type: 'checkbox', id: 'say-place', name: 'place', disabled: true }), ' ',
      el('label', { for: 'say-place' }, t('say.place'))),
    el('button', { type: 'submit' }, t('say.send')),
    el('div', { id: 'say-status', role: 'status', 'aria-live': 'polite' }));
}

function deletionForm(url) {
  const f = el('form', { class: 'say say-delete', novalidate: true },
    el('h3', {}, t('say.delete')),
    el('p', {}, el('label', { for: 'say-code' }, t('say.code')), el('br'),
      el('input', { id: 'say-code', name: 'code', type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: 100 })),
    el('button', { type: 'submit' }, t('say.deleteIt')),
    el('div', { id: 'say-delete-status', role: 'status', 'aria-live': 'polite' }));
  f.addEventListener('submit', async (event) => {
    event.preventDefault();
    const status = f.querySelector('#say-delete-status');
    const code = f.elements.code.value.trim();
    if (!code) { said(status, t('say.pasteCode')); return; }
    try {
      await send(`${url}/delete`, { code });
      said(status, t('say.deleted'));
      f.elements.code.value = '';
    } catch (error) {
      said(status, error.message);
    }
  });
  return f;
}

async function send(url, body) {
  const response = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: JSON.stringify(body), credentials: 'omit' });
  const answer = response.status === 204 ? {} : await response.json();
  if (!response.ok) throw new ApiError(response.status, answer.detail || `${response.status}`);
  return answer;
}

function said(status, ...lines) {
  status.replaceChildren(...lines.map((line) => el('p', {}, line)));
}

/** Fill the section from `…/contributions` and wire the form; a comparison without contributions hides it. */
export async function startContributions(section) {
  const url = section.dataset.contributionsUrl;
  let data;
  try {
    data = await getJsonAt(url);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return;  // this comparison takes no contributions
    throw error;
  }
  let place = null;
  const board = el('div', { id: 'say-published' }, ...published(data));
  section.hidden = false;
  section.replaceChildren(el('h2', { id: 'say-h' }, t('say.title')), el('p', {}, openingLine(data)), board);
  section.append(deletionForm(url));
  if (!data.open) return;
  const f = form(data);
  section.insertBefore(f, section.querySelector('form.say-delete'));
  document.addEventListener('civictwin:place', (event) => {
    place = event.detail;
    f.elements.place.disabled = false;
  });
  f.addEventListener('submit', async (event) => {
    event.preventDefault();
    const status = f.querySelector('#say-status');
    const values = { consent: f.elements.consent.checked, scenario: f.elements.scenario.value, theme: f.elements.theme.value,
      vote: f.elements.vote.value, text: f.elements.text.value, place: f.elements.place.checked ? place : null };
    if (!values.consent) { said(status, t('say.tickConsent')); f.elements.consent.focus(); return; }
    if (!globalThis.crypto?.subtle) { said(status, t('say.https')); return; }
    f.querySelector('button').disabled = true;
    section.dataset.sayState = 'working';
    try {
      said(status, t('say.preparing'));
      const issued = await getJsonAt(url.replace(/contributions$/, 'challenge'));
      const nonce = await solveChallenge(issued.challenge, issued.bits, sha256);
      const answer = await send(url, contributionBody(values, { challenge: issued.challenge, nonce }));
      said(status, t('say.thanks', { pseudonym: answer.pseudonym }), t('say.yourCode', { code: answer.deletion_code }));
      f.elements.text.value = '';
      section.dataset.sayState = 'sent';
    } catch (error) {
      said(status, error.message);
      section.dataset.sayState = 'failed';
    }
    f.querySelector('button').disabled = false;
  });
}
