// The viewer's moderation page (#moderation; docs/consultation.md#comments-and-votes): a moderator logs
// in with their token (kept in this tab, as the header's token form does), picks a consultation and
// works through its queue a page at a time: comments, votes and survey observations (with a preview
// of the photo, fetched with the token because a pending photo is for moderators only), each approved
// or rejected with a reason. The server's refusals (a closed consultation's ended moderation, a
// decision taken already) are shown as it words them. Everything from the server is put in as text.

import './moderation.css';
import { el } from './dom.js';
import {
  ApiError, apiUrl, authHeaders, getJson, getJsonAt, getToken, isOwnServer, setToken,
} from './api.js';
import {
  KINDS, STATUSES, decidedLine, decisionBody, itemHeading, itemPlace, linkOf, pageLine, phaseLine, queueQuery,
} from './moderationText.js';
import { t } from './i18n.js';

function picker(id, label, options) {
  return el('div', {}, el('label', { for: id }, label), el('select', { id }, ...options.map(([value, key]) => el('option', { value }, t(key)))));
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...(isOwnServer(url) ? authHeaders() : {}) },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new ApiError(response.status, answer.detail || `${response.status}`);
  return answer;
}

/** A pending photo as an object URL: fetched with the token (an <img> could not send it). */
async function photoPreview(url, id) {
  const image = el('img', { alt: t('moderation.photoAlt', { id }), class: 'moderation-photo' });
  try {
    const response = await fetch(url, { headers: isOwnServer(url) ? authHeaders() : {} });
    if (!response.ok) throw new Error(String(response.status));
    image.src = URL.createObjectURL(await response.blob());
    image.addEventListener('load', () => URL.revokeObjectURL(image.src), { once: true });
    return image;
  } catch {
    return el('p', {}, t('moderation.photoFailed'));
  }
}

function decisionForm(baseUrl, item) {
  const id = `moderation-reason-${item.id}`;
  const status = el('p', { class: 'moderation-result', role: 'status' });
  const reason = el('input', { id, type: 'text', maxlength: 500, autocomplete: 'off' });
  const buttons = [['approve', t('moderation.approve')], ['reject', t('moderation.reject')]].map(([decision, label]) => {
    const button = el('button', { type: 'button', 'data-decision': decision }, label);
    button.addEventListener('click', async () => {
      const body = decisionBody(decision, reason.value);
      if (!body) { status.textContent = t('moderation.needReason'); reason.focus(); return; }
      for (const b of buttons) b.disabled = true;
      try {
        const answer = await postJson(`${baseUrl}/moderation/${item.id}`, body);
        status.textContent = decidedLine(answer.status, answer.reason);
        status.dataset.decided = answer.status;
        return;
      } catch (error) {
        status.textContent = error.message;
        status.dataset.refused = String(error.status || '');
      }
      for (const b of buttons) b.disabled = false;
    });
    return button;
  });
  return el('div', { class: 'moderation-decision' }, el('label', { for: id }, t('moderation.reason')), reason, ...buttons, status);
}

async function itemView(baseUrl, item) {
  const parts = [el('strong', {}, itemHeading(item))];
  const place = itemPlace(item);
  if (place) parts.push(el('p', {}, place));
  if (item.text) parts.push(el('p', { class: 'moderation-text' }, item.text));
  if (item.photo) parts.push(await photoPreview(item.photo, item.id));
  if (item.status === 'pending') parts.push(decisionForm(baseUrl, item));
  else if (item.reason) parts.push(el('p', {}, decidedLine(item.status, item.reason)));
  return el('li', { 'data-id': item.id, 'data-kind': item.kind }, ...parts);
}

function loginForm(onLogin) {
  const input = el('input', { id: 'moderation-token', type: 'password', autocomplete: 'off', spellcheck: 'false' });
  const form = el('form', { class: 'moderation-login' },
    el('label', { for: 'moderation-token' }, t('moderation.tokenLabel')), ' ', input, ' ', el('button', { type: 'submit' }, t('moderation.tokenUse')),
    el('p', { class: 'hint' }, t('moderation.tokenHint')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    setToken(input.value);
    input.value = '';
    onLogin();
  });
  return form;
}

/** Start the page in `root` (the #page-moderation section). */
export async function startModerationPage(root) {
  const status = el('p', { id: 'moderation-status', class: 'status', role: 'status' });
  const list = el('ol', { id: 'moderation-queue', class: 'moderation-queue' });
  const pages = el('p', { class: 'moderation-pages' });
  const pickers = el('form', { class: 'pickers' },
    picker('moderation-consultation', t('moderation.consultation'), []),
    picker('moderation-show', t('moderation.show'), STATUSES),
    picker('moderation-kind', t('moderation.kind'), KINDS));
  const state = el('p', { id: 'moderation-phase', class: 'hint' });
  root.replaceChildren(el('h2', {}, t('moderation.heading')), el('p', { class: 'hint' }, t('moderation.intro')), loginForm(() => load()), pickers, state, status, list, pages);
  const select = (id) => root.querySelector(`#${id}`);

  let comparisons = [];
  try {
    comparisons = (await getJson('comparisons')).comparisons;
  } catch (error) {
    status.textContent = error.message;
  }
  if (!comparisons.length) { status.textContent ||= t('moderation.noComparisons'); return root; }
  const wanted = new URLSearchParams(window.location.hash.split('?')[1] || '').get('c');
  select('moderation-consultation').replaceChildren(...comparisons.map((c) => el('option', { value: c.id, selected: c.id === wanted }, c.id)));

  async function load(url = null) {
    const id = select('moderation-consultation').value;
    const baseUrl = apiUrl(`consultations/${encodeURIComponent(id)}`);
    const pageUrl = url || `${baseUrl}/moderation?${queueQuery({ status: select('moderation-show').value, kind: select('moderation-kind').value })}`;
    root.dataset.moderationState = 'loading';
    status.textContent = t('moderation.loading');
    list.replaceChildren();
    pages.replaceChildren();
    if (!getToken()) { status.textContent = t('moderation.needToken'); root.dataset.moderationState = 'login'; return; }
    try {
      const queue = await getJsonAt(pageUrl);
      state.textContent = phaseLine(queue.open, queue.moderation_until);
      list.replaceChildren(...await Promise.all(queue.contributions.map((item) => itemView(baseUrl, item))));
      status.textContent = queue.contributions.length ? pageLine({ total: queue.total, offset: queue.offset, count: queue.contributions.length }) : t('moderation.empty');
      for (const [rel, label] of [['prev', t('moderation.previous')], ['next', t('moderation.next')]]) {
        const href = linkOf(queue.links, rel);
        if (!href) continue;
        const button = el('button', { type: 'button', 'data-rel': rel }, label);
        button.addEventListener('click', () => load(href));
        pages.append(button, ' ');
      }
      root.dataset.moderationState = 'ready';
    } catch (error) {
      status.textContent = error.message;
      root.dataset.moderationState = 'failed';
    }
  }

  for (const id of ['moderation-consultation', 'moderation-show', 'moderation-kind']) select(id).addEventListener('change', () => load());
  await load();
  return root;
}
