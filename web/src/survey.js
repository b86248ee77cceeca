// The consultation page's survey form (docs/methods-surveys.md#the-viewers-survey-form): a geolocated
// observation with a category, text and an optional photo, sent for moderation, and the approved
// observations as a list and as points on the page's map. The place is the point last chosen on the
// map or by address (the page's `civictwin:place` event) or the device's position ("Use my location").
// A photo over the server's limit is made smaller in the browser first; the server re-encodes every
// photo without its metadata anyway. Everything from the server is put into the page as text.

import './survey.css';
import { el } from './dom.js';
import { ApiError, getJsonAt } from './api.js';
import { solveChallenge } from './contributeText.js';
import {
  megabytes, observationFields, observationHeading, photoPlan, placeLine, shrunkSize,
} from './surveyText.js';
import { t } from './i18n.js';

const sha256 = async (bytes) => crypto.subtle.digest('SHA-256', bytes);
const JPEG_QUALITY = 0.85;

function said(status, ...lines) {
  status.replaceChildren(...lines.map((line) => el('p', {}, line)));
}

function published(layer) {
  const items = layer.features.map((f) => {
    const p = f.properties;
    const photo = p.photo ? el('img', { src: p.photo, alt: t('survey.photoAlt', { category: p.category }), loading: 'lazy', class: 'survey-photo' }) : '';
    const [lon, lat] = f.geometry.coordinates;
    return el('li', {}, el('strong', {}, observationHeading(p)), el('p', {}, placeLine({ lon, lat })), p.text ? el('p', {}, p.text) : '', photo);
  });
  return [
    el('h3', {}, t('survey.published')),
    items.length ? el('ol', { class: 'survey-list' }, ...items) : el('p', {}, t('survey.nonePublished')),
  ];
}

function form(layer) {
  return el('form', { class: 'survey', novalidate: true },
    el('h3', {}, t('survey.heading')),
    el('p', {}, t('survey.intro')),
    el('p', { id: 'survey-consent-text' }, layer.consent),
    el('p', {}, el('input', { type: 'checkbox', id: 'survey-consent', name: 'consent', required: true, 'aria-describedby': 'survey-consent-text' }),
      ' ', el('label', { for: 'survey-consent' }, t('survey.consentAgree'))),
    el('p', {}, el('label', { for: 'survey-category' }, t('survey.category')), el('br'),
      el('select', { id: 'survey-category', name: 'category', required: true }, ...layer.categories.map((c) => el('option', { value: c }, c)))),
    el('p', {}, el('label', { for: 'survey-text' }, t('survey.text')), el('br'),
      el('textarea', { id: 'survey-text', name: 'text', rows: 3, maxlength: 2000 })),
    el('p', {}, el('label', { for: 'survey-photo' }, t('survey.photo')), el('br'),
      el('input', { id: 'survey-photo', name: 'photo', type: 'file', accept: 'image/jpeg,image/png,image/webp' })),
    el('p', {}, el('strong', {}, t('survey.place')), ' ', el('span', { id: 'survey-place', 'aria-live': 'polite' }, t('survey.noPlace')), ' ',
      el('button', { type: 'button', id: 'survey-locate' }, t('survey.useLocation'))),
    el('button', { type: 'submit' }, t('survey.send')),
    el('div', { id: 'survey-status', role: 'status', 'aria-live': 'polite' }));
}

/** The photo to send: the chosen file as it is, a smaller JPEG of it, or null without one. */
async function photoToSend(file, maxBytes) {
  const plan = photoPlan(file?.size || 0, maxBytes);
  if (plan === 'none') return null;
  if (plan === 'as-is') return file;
  const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  const { width, height } = shrunkSize(bitmap.width, bitmap.height);
  const canvas = el('canvas', { width, height });
  canvas.getContext('2d').drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  const blob = await new Promise((resolve) => { canvas.toBlob(resolve, 'image/jpeg', JPEG_QUALITY); });
  if (!blob || blob.size > maxBytes) throw new Error(t('survey.photoTooLarge', { size: megabytes(maxBytes) }));
  return new File([blob], 'photo.jpg', { type: 'image/jpeg' });
}

async function send(url, fields, photo) {
  const body = new FormData();
  for (const [name, value] of fields) body.append(name, value);
  if (photo) body.append('photo', photo, photo.name || 'photo.jpg');
  const response = await fetch(url, {
    method: 'POST', body, credentials: 'omit', headers: { Accept: 'application/json', 'X-Civictwin-Form': 'survey' },
  });
  const answer = await response.json();
  if (!response.ok) throw new ApiError(response.status, answer.detail || `${response.status}`);
  return answer;
}

/** The approved observations as points on the page's map, once it is drawn (after its first render). */
function mapLayer(url) {
  const add = () => {
    const map = window.civictwin?.map;
    if (!map || map.getSource('observations')) return;
    map.addSource('observations', { type: 'geojson', data: url });
    map.addLayer({ id: 'observations', type: 'circle', source: 'observations',
      paint: { 'circle-color': '#e69f00', 'circle-radius': 6, 'circle-stroke-color': '#000', 'circle-stroke-width': 1 } });
  };
  if (document.body.dataset.consultState === 'ready') add();
  else document.addEventListener('civictwin:ready', add, { once: true });
}

/** Wire "Use my location" to the device's geolocation (asked only when the button is pressed). */
function locateButton(button, choose, status) {
  button.addEventListener('click', () => {
    if (!navigator.geolocation) { said(status, t('survey.noGeolocation')); return; }
    said(status, t('survey.locating'));
    navigator.geolocation.getCurrentPosition(
      (position) => { choose({ lon: position.coords.longitude, lat: position.coords.latitude }); status.replaceChildren(); },
      (error) => said(status, t('survey.locationFailed', { message: error.message })),
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 },
    );
  });
}

/**
 * Add the survey section after `say` (the page's "Have your say" section) when the consultation takes
 * observations (`…/observations` answers); otherwise nothing. A failure to load is said in one line
 * after `say`: the rest of the page stands.
 */
export async function startSurvey(say) {
  const url = say.dataset.contributionsUrl.replace(/contributions$/, 'observations');
  let layer;
  try {
    layer = await getJsonAt(url);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) say.after(el('p', { id: 'survey' }, t('survey.loadFailed', { message: error.message })));
    return;  // 404: no survey_categories, no form
  }
  const section = el('section', { id: 'survey', 'aria-labelledby': 'survey-h' },
    el('h2', { id: 'survey-h' }, t('survey.heading')), ...published(layer));
  say.after(section);
  mapLayer(url);
  if (!layer.open) { section.append(el('p', {}, t('survey.closed'))); return; }
  const f = form(layer);
  section.append(f);
  const status = f.querySelector('#survey-status');
  let place = null;
  const choose = (chosen) => {
    place = chosen;
    f.querySelector('#survey-place').textContent = placeLine(chosen);
  };
  document.addEventListener('civictwin:place', (event) => choose(event.detail));
  locateButton(f.querySelector('#survey-locate'), choose, status);
  f.addEventListener('submit', async (event) => {
    event.preventDefault();
    const values = { consent: f.elements.consent.checked, category: f.elements.category.value, text: f.elements.text.value, place };
    if (!values.consent) { said(status, t('survey.needConsent')); f.elements.consent.focus(); return; }
    if (!place) { said(status, t('survey.needPlace')); return; }
    if (!globalThis.crypto?.subtle) { said(status, t('survey.needHttps')); return; }
    const button = f.querySelector('button[type=submit]');
    button.disabled = true;
    section.dataset.surveyState = 'working';
    try {
      const chosen = f.elements.photo.files[0];
      if (chosen && chosen.size > layer.photo_max_bytes) said(status, t('survey.shrinking'));
      const photo = await photoToSend(chosen, layer.photo_max_bytes);
      said(status, t('survey.preparing'));
      const issued = await getJsonAt(url.replace(/observations$/, 'challenge'));
      const nonce = await solveChallenge(issued.challenge, issued.bits, sha256);
      const answer = await send(url, observationFields(values, { challenge: issued.challenge, nonce }), photo);
      said(status, t('survey.thanks', { pseudonym: answer.pseudonym }), t('survey.deletionCode', { code: answer.deletion_code }));
      f.elements.text.value = '';
      f.elements.photo.value = '';
      section.dataset.surveyState = 'sent';
    } catch (error) {
      said(status, error.message);
      section.dataset.surveyState = 'failed';
    }
    button.disabled = false;
  });
}
