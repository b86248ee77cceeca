// The consultation page's "Propose a scenario" panel (docs/consultation.md#citizen-proposals): the
// approved proposals with their results beside the official scenarios, a form composing a proposal
// from the server's menu of interventions (each placed on a map: click streets, or draw an area),
// checked by the server as it is composed, and a staff section to approve, reject and cancel. A
// consultation that takes no proposals shows nothing. Everything from the server is put in as text.

import './propose.css';
import { el } from './dom.js';
import * as maplibregl from 'maplibre-gl';
import { ApiError, authHeaders, getJsonAt, getToken, setToken, transformRequest } from './api.js';
import {
  menuLabel, problemLine, problemsFor, proposalBody, proposalHeading, resultRows,
  settingInput, settingValue, staffActions, staffLine,
} from './proposeText.js';
import { language, t } from './i18n.js';

const CHECK_AFTER_MS = 400;

async function post(url, body, { staff = false } = {}) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json', ...(staff ? authHeaders() : {}) };
  const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), credentials: 'omit' });
  const answer = await response.json();
  if (!response.ok && !answer.problems) throw new ApiError(response.status, answer.detail || `${response.status}`);
  return { status: response.status, answer };
}

/** One approved proposal: heading, interventions, and its result table beside the official scenarios. */
function proposalItem(p, officialKpis) {
  const item = el('li', { 'data-proposal': p.id, 'data-state': p.state }, el('strong', {}, proposalHeading(p)));
  if (p.description) item.append(el('p', {}, p.description));
  item.append(el('ul', {}, ...p.interventions.map((line) => el('li', {}, line))));
  if (!p.result) return item;
  if (p.result.not_evaluated) { // the simulation failed the quality check: the finding, no numbers
    item.append(el('p', { class: 'not-evaluated' }, p.result.not_evaluated), el('p', {}, el('a', { href: p.result.page }, t('proposal.fullReport'))));
    return item;
  }
  const rows = resultRows(officialKpis, p.result);
  const scenarios = rows[0]?.official.map((o) => o.scenario) || [];
  const table = el('table', { class: 'propose-result' },
    el('caption', {}, t('proposal.resultCaption', { title: p.title })),
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, t('proposal.indicator')), ...scenarios.map((s) => el('th', { scope: 'col' }, s)),
      el('th', { scope: 'col' }, t('proposal.proposalColumn')), el('th', { scope: 'col' }, t('proposal.changeColumn')))),
    el('tbody', {}, ...rows.map((r) => el('tr', { 'data-kpi': r.kpi }, el('th', { scope: 'row' }, r.label),
      ...scenarios.map((s) => el('td', {}, r.official.find((o) => o.scenario === s)?.text ?? '–')),
      el('td', { class: 'propose-value' }, r.proposal), el('td', {}, r.change)))));
  item.append(el('div', { class: 'table-wrap' }, table), el('p', {}, el('a', { href: p.result.page }, t('proposal.fullResult'))));
  return item;
}

/** The map for placing interventions: the twin's streets (vector tiles) to click, the chosen ones, the drawn area. */
function placingMap(container, menu, bounds) {
  const sources = { drawn: { type: 'geojson', data: { type: 'FeatureCollection', features: [] } } };
  const layers = [{ id: 'background', type: 'background', paint: { 'background-color': '#eceff1' } }];
  if (menu.streets) {
    sources.streets = { type: 'vector', url: menu.streets };
    layers.push(
      { id: 'streets', type: 'line', source: 'streets', 'source-layer': menu.streets_layer, paint: { 'line-color': '#8a8f94', 'line-width': 3 } },
      { id: 'chosen', type: 'line', source: 'streets', 'source-layer': menu.streets_layer, filter: ['in', ['get', 'osm_id'], ['literal', []]], paint: { 'line-color': '#0072b2', 'line-width': 6 } },
    );
  }
  layers.push(
    { id: 'drawn-fill', type: 'fill', source: 'drawn', filter: ['==', ['geometry-type'], 'Polygon'], paint: { 'fill-color': '#009e73', 'fill-opacity': 0.3 } },
    { id: 'drawn-line', type: 'line', source: 'drawn', paint: { 'line-color': '#009e73', 'line-width': 2 } },
    { id: 'drawn-corners', type: 'circle', source: 'drawn', filter: ['==', ['geometry-type'], 'Point'], paint: { 'circle-color': '#009e73', 'circle-radius': 4 } },
  );
  return new maplibregl.Map({ container, style: { version: 8, sources, layers }, bounds, fitBoundsOptions: { padding: 16 }, transformRequest, attributionControl: { compact: true } });
}

/** The composing form and its state: interventions added from the menu, each placed on the map. */
function composer(section, { menu, base, map }) {
  const state = { items: [], active: null, problems: [], timer: null, checks: 0 };
  const title = el('input', { id: 'propose-title', name: 'title', type: 'text', maxlength: 120, required: true });
  const description = el('textarea', { id: 'propose-description', name: 'description', rows: 3, maxlength: 1000 });
  const picker = el('select', { id: 'propose-pick' }, ...menu.interventions.map((e) => el('option', { value: e.type, title: e.help }, menuLabel(e))));
  const addButton = el('button', { type: 'button', id: 'propose-add' }, t('proposal.add'));
  const list = el('ol', { id: 'propose-items' });
  const problems = el('div', { id: 'propose-problems', role: 'status', 'aria-live': 'polite' });
  const consent = el('input', { type: 'checkbox', id: 'propose-consent' });
  const send = el('button', { type: 'submit', id: 'propose-send' }, t('proposal.send'));
  const status = el('div', { id: 'propose-status', role: 'status', 'aria-live': 'polite' });
  const form = el('form', { class: 'propose', novalidate: true },
    el('p', {}, el('label', { for: 'propose-title' }, t('proposal.titleLabel')), el('br'), title),
    el('p', {}, el('label', { for: 'propose-description' }, t('proposal.descriptionLabel')), el('br'), description),
    el('p', {}, el('label', { for: 'propose-pick' }, t('proposal.pickLabel')), ' ', picker, ' ', addButton),
    list, problems,
    el('p', { id: 'propose-consent-text' }, t('proposal.consent')),
    el('p', {}, consent, ' ', el('label', { for: 'propose-consent' }, t('proposal.consentLabel'))),
    send, status);

  const draft = () => ({ title: title.value, description: description.value, items: state.items });
  const redraw = () => {
    const item = state.active != null ? state.items[state.active] : null;
    if (map.getLayer('chosen')) map.setFilter('chosen', ['in', ['get', 'osm_id'], ['literal', item?.osmIds || []]]);
    const corners = item?.corners || [];
    const features = corners.map((c) => ({ type: 'Feature', geometry: { type: 'Point', coordinates: c }, properties: {} }));
    if (corners.length >= 3 && item.closed) features.push({ type: 'Feature', geometry: { type: 'Polygon', coordinates: [[...corners, corners[0]]] }, properties: {} });
    else if (corners.length >= 2) features.push({ type: 'Feature', geometry: { type: 'LineString', coordinates: corners }, properties: {} });
    map.getSource('drawn')?.setData({ type: 'FeatureCollection', features });
  };
  const renderItems = () => {
    list.replaceChildren(...state.items.map((item, index) => itemView(item, index)));
    redraw();
  };
  // Each change schedules a check of the whole draft; only the latest check's answer is shown, and the
  // section says 'checking' from the change on, so nothing reads an earlier draft's problems as this one's.
  const check = () => {
    clearTimeout(state.timer);
    const ticket = ++state.checks;
    section.dataset.proposeCheck = 'checking';
    state.timer = setTimeout(async () => {
      let found;
      try {
        const { answer } = await post(`${base}/validate?lang=${language()}`, proposalBody({ ...draft(), items: state.items.map(placed) }));
        found = answer.problems;
      } catch (error) {
        found = [{ field: 'body', message: error.message }];
      }
      if (ticket !== state.checks) return; // the draft changed while this check ran: a later one answers
      state.problems = found;
      showProblems();
      section.dataset.proposeCheck = state.problems.length ? 'problems' : 'valid';
    }, CHECK_AFTER_MS);
  };
  const placed = (item) => ({ ...item, corners: item.closed ? item.corners : [] });
  const settingLabel = (index, key) => menu.interventions.find((e) => e.type === state.items[index]?.type)?.setting_labels?.[key];
  const showProblems = () => {
    const general = problemsFor(state.problems, null);
    problems.replaceChildren(state.problems.length
      ? el('div', {}, el('h4', {}, t('proposal.problemsHeading')), el('ul', {}, ...general.map((p) => el('li', {}, problemLine(p, { settingLabel })))))
      : el('p', {}, t('proposal.valid')));
    state.items.forEach((_, index) => {
      const box = list.querySelector(`[data-item="${index}"] .propose-item-problems`);
      box?.replaceChildren(...problemsFor(state.problems, index).map((p) => el('li', {}, problemLine(p, { settingLabel }))));
    });
  };
  const itemView = (item, index) => {
    const entry = menu.interventions.find((e) => e.type === item.type);
    const fields = Object.entries(entry.settings).map(([name, schema]) => {
      const input = settingInput(name, schema, { label: entry.setting_labels?.[name], choices: entry.choice_labels });
      const id = `propose-${index}-${name}`;
      let control;
      if (input.kind === 'select') control = el('select', { id }, ...input.options.map((o, i) => el('option', { value: o, selected: o === String(item.settings[name] ?? input.value) }, input.optionLabels[i])));
      else if (input.kind === 'checkbox') control = el('input', { id, type: 'checkbox', checked: Boolean(item.settings[name] ?? input.value) });
      else control = el('input', { id, type: input.kind, min: input.min, max: input.max, step: input.step, value: item.settings[name] ?? input.value });
      control.addEventListener('change', () => {
        item.settings[name] = settingValue(schema, input.kind === 'checkbox' ? control.checked : control.value);
        check();
      });
      return el('p', {}, el('label', { for: id }, input.label), ' ', control);
    });
    const active = state.active === index;
    const where = entry.placed === 'streets'
      ? el('p', { class: 'propose-placed' }, menu.streets ? t('proposal.streetsHelp') : t('proposal.noStreets'), ' ', t('proposal.streetsChosen', { count: item.osmIds.length }))
      : el('p', { class: 'propose-placed' }, t('proposal.areaHelp'), ' ', item.closed ? t('proposal.areaDone') : t('proposal.cornersChosen', { count: item.corners.length }));
    const buttons = [el('button', { type: 'button', class: 'propose-activate', 'aria-pressed': active }, active ? t('proposal.placing') : t('proposal.place'))];
    if (entry.placed === 'area') buttons.push(el('button', { type: 'button', class: 'propose-finish', disabled: item.corners.length < 3 || item.closed }, t('proposal.finishArea')), el('button', { type: 'button', class: 'propose-clear' }, t('proposal.clearArea')));
    buttons.push(el('button', { type: 'button', class: 'propose-remove' }, t('proposal.remove')));
    const view = el('li', { 'data-item': index, 'data-type': item.type, 'data-osm-ids': item.osmIds.join(' '), class: active ? 'active' : '' },
      el('fieldset', {}, el('legend', {}, menuLabel(entry)), el('p', { class: 'propose-help' }, entry.help), where, ...fields, el('p', {}, ...buttons),
        el('ul', { class: 'propose-item-problems', role: 'status' })));
    view.querySelector('.propose-activate').addEventListener('click', () => { state.active = index; renderItems(); });
    view.querySelector('.propose-remove').addEventListener('click', () => {
      state.items.splice(index, 1);
      state.active = state.items.length ? state.items.length - 1 : null;
      renderItems();
      check();
    });
    view.querySelector('.propose-finish')?.addEventListener('click', () => { item.closed = true; renderItems(); check(); });
    view.querySelector('.propose-clear')?.addEventListener('click', () => { item.corners = []; item.closed = false; renderItems(); check(); });
    return view;
  };

  addButton.addEventListener('click', () => {
    const entry = menu.interventions.find((e) => e.type === picker.value);
    const settings = {};
    for (const [name, schema] of Object.entries(entry.settings)) {
      if (!schema.optional || schema.default !== undefined) settings[name] = settingValue(schema, schema.default ?? '');
    }
    state.items.push({ type: entry.type, settings, osmIds: [], corners: [], closed: false });
    state.active = state.items.length - 1;
    renderItems();
    check();
  });
  for (const input of [title, description]) input.addEventListener('input', check);
  map.on('click', (event) => {
    const item = state.active != null ? state.items[state.active] : null;
    if (!item) return;
    const entry = menu.interventions.find((e) => e.type === item.type);
    if (entry.placed === 'streets') {
      if (!map.getLayer('streets')) return;
      const { x, y } = event.point;
      const hit = map.queryRenderedFeatures([[x - 6, y - 6], [x + 6, y + 6]], { layers: ['streets'] })[0];
      const osmId = hit ? Number(hit.properties.osm_id) : null;
      if (osmId == null || Number.isNaN(osmId)) return;
      item.osmIds = item.osmIds.includes(osmId) ? item.osmIds.filter((i) => i !== osmId) : [...item.osmIds, osmId];
    } else {
      if (item.closed) return;
      item.corners.push([event.lngLat.lng, event.lngLat.lat]);
    }
    renderItems();
    check();
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!consent.checked) { status.replaceChildren(el('p', {}, t('proposal.needConsent'))); consent.focus(); return; }
    send.disabled = true;
    section.dataset.proposeState = 'sending';
    try {
      const { status: code, answer } = await post(`${base}?lang=${language()}`, proposalBody({ ...draft(), items: state.items.map(placed) }, true));
      if (code === 202) {
        status.replaceChildren(el('p', {}, t('proposal.sent', { pseudonym: answer.pseudonym, id: answer.id })), el('p', {}, t('proposal.deletionCode', { code: answer.deletion_code })));
        section.dataset.proposeState = 'sent';
        section.dataset.proposalId = answer.id;
      } else {
        state.problems = answer.problems || [];
        showProblems();
        status.replaceChildren(el('p', {}, t('proposal.failed', { message: answer.detail })));
        section.dataset.proposeState = 'refused';
      }
    } catch (error) {
      status.replaceChildren(el('p', {}, t('proposal.failed', { message: error.message })));
      section.dataset.proposeState = 'failed';
    }
    send.disabled = false;
  });
  return form;
}

/** The author's deletion form: the code given at submission deletes the proposal and its run. */
function deletionForm(base, refresh) {
  const code = el('input', { id: 'propose-code', type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: 100 });
  const status = el('div', { id: 'propose-delete-status', role: 'status', 'aria-live': 'polite' });
  const form = el('form', { class: 'propose-delete', novalidate: true }, el('h3', {}, t('proposal.deleteHeading')),
    el('p', {}, el('label', { for: 'propose-code' }, t('proposal.deleteLabel')), el('br'), code), el('button', { type: 'submit' }, t('proposal.deleteButton')), status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!code.value.trim()) { status.replaceChildren(el('p', {}, t('proposal.deleteNeedCode'))); return; }
    const response = await fetch(`${base}/delete?lang=${language()}`, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: JSON.stringify({ code: code.value.trim() }), credentials: 'omit' });
    const message = response.status === 204 ? t('proposal.deleted') : (await response.json()).detail;
    status.replaceChildren(el('p', {}, message));
    if (response.status === 204) { code.value = ''; await refresh(); }
  });
  return form;
}

/** The staff section: a token field, then every proposal with approve, reject or cancel and a reason. */
function staffSection(base, refresh) {
  const box = el('div', { id: 'propose-staff-list' });
  const token = el('input', { id: 'propose-token', type: 'password', autocomplete: 'off' });
  const use = el('button', { type: 'button', id: 'propose-token-use' }, t('proposal.tokenSave'));
  const details = el('details', { id: 'propose-staff' }, el('summary', {}, t('proposal.staffHeading')),
    el('p', {}, el('label', { for: 'propose-token' }, t('proposal.tokenLabel')), ' ', token, ' ', use), box);
  const load = async () => {
    if (!getToken()) return;
    let data;
    try {
      data = await getJsonAt(`${base}/review`);
    } catch (error) {
      box.replaceChildren(el('p', {}, error.status === 401 || error.status === 403 ? t('proposal.staffRefused') : error.message));
      return;
    }
    box.replaceChildren(el('ul', {}, ...data.proposals.map((p) => staffItem(p))));
    details.dataset.loaded = 'true';
  };
  const staffItem = (p) => {
    const reasonId = `propose-reason-${p.id}`;
    const reason = el('input', { id: reasonId, type: 'text', maxlength: 500 });
    const item = el('li', { 'data-proposal': p.id, 'data-state': p.state }, staffLine(p));
    const actions = staffActions(p.state);
    if (!actions.length) return item;
    item.append(' ', el('label', { for: reasonId }, t('proposal.reasonLabel', { id: p.id })), ' ', reason);
    for (const action of actions) {
      const button = el('button', { type: 'button', 'data-action': action }, t(`proposal.${action}`));
      button.addEventListener('click', async () => {
        if (!reason.value.trim()) { reason.focus(); item.append(el('p', {}, t('proposal.needReason'))); return; }
        const url = action === 'cancel' ? `${base}/${p.id}/cancel` : `${base}/${p.id}/decision`;
        const body = action === 'cancel' ? { reason: reason.value } : { decision: action, reason: reason.value };
        try {
          await post(url, body, { staff: true });
        } catch (error) {
          item.append(el('p', {}, error.message));
          return;
        }
        await load();
        await refresh();
      });
      item.append(' ', button);
    }
    return item;
  };
  use.addEventListener('click', () => { setToken(token.value); token.value = ''; load(); });
  load();
  return { details, load };
}

/** Fill the panel for consultation `comparison`; nothing is shown when it takes no proposals. */
export async function startProposals(main, comparison) {
  const base = new URL(`${encodeURIComponent(comparison)}/proposals`, window.location.href).href;
  let menu;
  try {
    menu = await getJsonAt(`${base}/menu?lang=${language()}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return;
    throw error;
  }
  const official = await getJsonAt(new URL(`${encodeURIComponent(comparison)}/data`, window.location.href).href);
  const section = el('section', { id: 'propose', 'aria-labelledby': 'propose-h', 'data-propose-state': 'ready' },
    el('h2', { id: 'propose-h' }, t('proposal.heading')), el('p', {}, t('proposal.intro')));
  const published = el('div', { id: 'propose-published' });
  const refresh = async () => {
    const data = await getJsonAt(base);
    published.replaceChildren(el('h3', {}, t('proposal.published')), data.proposals.length
      ? el('ol', { class: 'propose-list' }, ...data.proposals.map((p) => proposalItem(p, official.kpis)))
      : el('p', {}, t('proposal.none')));
  };
  const mapBox = el('div', { id: 'propose-map', class: 'map', role: 'region', 'aria-label': t('proposal.mapLabel') });
  section.append(published, mapBox);
  main.append(section);
  const bounds = official.maps?.[0]?.bounds;
  const map = placingMap(mapBox, menu, bounds || [[-180, -85], [180, 85]]);
  window.civictwin = window.civictwin || {};
  window.civictwin.proposeMap = map;
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  section.append(composer(section, { menu, base, map }));
  section.append(deletionForm(base, refresh));
  const staff = staffSection(base, refresh);
  section.append(staff.details);
  await refresh();
  map.once('idle', () => { section.dataset.proposeMap = 'ready'; });
}
