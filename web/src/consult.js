// The public consultation page (served by the API at /consultations/<comparison>): the server renders
// every word and number; this adds the map of where the chosen plan changes things, and answers
// "what changes near me" for a clicked point or a typed address in place, keeping the URL shareable
// (?plan=&address= or ?plan=&lon=&lat=, which the server renders the same way without scripts).

import 'maplibre-gl/dist/maplibre-gl.css';
import './consult.css';
import * as maplibregl from 'maplibre-gl';
import { setWorkerUrl } from 'maplibre-gl';
import { getJsonAt, transformRequest } from './api.js';
import { changeColour, nearItems, nearQuery } from './consultText.js';
import { language, setLanguage, t } from './i18n.js';
import { startContributions } from './contribute.js';
import { startProposals } from './propose.js';
import { startSurvey } from './survey.js';

setWorkerUrl(new URL('./maplibre-gl-worker.mjs', import.meta.url).href);

// Hooks for the browser tests and the benchmark: the map, and when the page was first fully drawn
// (milliseconds since navigation started).
window.civictwin = { map: null, readyAtMs: null };

// The server chose the page's language (its switcher, cookie or Accept-Language) and named it in <html lang>.
setLanguage(document.documentElement.lang);

const CONTEXT_FILL = { green: '#cfe3d9', buildings: '#d3d6d9' };

/** The layer drawing the changes, by the geometry kind the server names (line, fill or circle). */
function changeLayer(kind, column) {
  const colour = changeColour(column);
  if (kind === 'line') return { id: 'changes', type: 'line', source: 'changes', layout: { 'line-cap': 'round' }, paint: { 'line-color': colour, 'line-width': 4, 'line-offset': 1.5 } };
  if (kind === 'circle') return { id: 'changes', type: 'circle', source: 'changes', paint: { 'circle-color': colour, 'circle-radius': 5 } };
  return { id: 'changes', type: 'fill', source: 'changes', paint: { 'fill-color': colour, 'fill-opacity': 0.8 } };
}

/**
 * How MapLibre's worker cuts the changes into tiles (style spec, GeoJSON source): Douglas-Peucker
 * `tolerance` 1.5 instead of 0.375 and a `buffer` of 16 instead of 128 (both in pixels of a 512 px
 * tile). A street line then moves by at most 1.5 tile pixels (1.5 to 3 screen pixels between whole
 * zoom levels), within its 4 px width, and the buffer still covers its half width plus offset
 * (3.5 px) at tile edges; cutting a traffic comparison's ~9 000 edges into tiles then takes far less
 * of the worker's time, which was most of the page's first render (BENCHMARKS.md, "Consultation
 * page (issue 13)").
 */
const CHANGE_TILING = { tolerance: 1.5, buffer: 16 };

/**
 * The map, its whole style known at once so MapLibre fetches everything in parallel: the changes
 * (GeoJSON, fetched and parsed by its worker) over the twin's green areas and buildings from the
 * viewer's vector tiles (`context`: TileJSON URLs of the layers the caller may read).
 */
function drawMap(container, { geojson, kind, column, bounds, context }) {
  const sources = { changes: { type: 'geojson', data: geojson, ...CHANGE_TILING } };
  for (const layer of context) sources[layer.key] = { type: 'vector', url: layer.url };
  return new maplibregl.Map({
    container,
    style: {
      version: 8,
      sources,
      layers: [
        { id: 'background', type: 'background', paint: { 'background-color': '#eceff1' } },
        ...context.map((layer) => ({ id: `context-${layer.key}`, type: 'fill', source: layer.key, 'source-layer': layer.layer, paint: { 'fill-color': CONTEXT_FILL[layer.key] } })),
        changeLayer(kind, column),
      ],
    },
    bounds,
    fitBoundsOptions: { padding: 24 },
    attributionControl: { compact: true },
    transformRequest,
  });
}

/** Put the answer of the near endpoint into the live region (text only: nothing from it is HTML). */
function showNear(region, answer) {
  region.replaceChildren();
  const head = document.createElement('p');
  const strong = document.createElement('strong');
  strong.textContent = t('consult.near', { place: answer.place.label });
  head.append(strong, t('consult.plan', { plan: answer.plan }));
  const list = document.createElement('ul');
  for (const line of nearItems(answer)) {
    const item = document.createElement('li');
    item.textContent = line;
    list.append(item);
  }
  region.append(head, list);
}

function showProblem(region, message) {
  const p = document.createElement('p');
  p.textContent = message;
  region.replaceChildren(p);
}

async function start() {
  const body = document.body;
  const say = document.getElementById('say');
  if (say) startContributions(say).catch((error) => { say.hidden = false; say.textContent = t('consult.commentsFailed', { error: error.message }); });
  startProposals(document.getElementById('main'), body.dataset.comparison).catch((error) => { body.dataset.proposeError = error.message; });
  if (say) startSurvey(say);
  const region = document.getElementById('near-result');
  const container = document.getElementById('map');
  const { nearUrl, plan, geojson, column, kind } = body.dataset;
  let map = null;
  let marker = null;
  const place = (lon, lat) => {
    if (!map) return;
    if (!marker) marker = new maplibregl.Marker({ color: '#0072b2' });
    marker.setLngLat([lon, lat]).addTo(map);
    document.dispatchEvent(new CustomEvent('civictwin:place', { detail: { lon, lat } }));
  };
  const ask = async (params) => {
    body.dataset.nearState = 'loading';
    const query = nearQuery(plan, params);
    try {
      // The answer's sentences in the page's language; the shareable URL stays without it.
      const answer = await getJsonAt(`${nearUrl}?${query}&lang=${language()}`);
      showNear(region, answer);
      place(answer.place.lon, answer.place.lat);
      window.history.replaceState(null, '', `?${query}`);
    } catch (error) {
      showProblem(region, error.message);
    }
    body.dataset.nearState = 'ready';
  };
  const form = document.querySelector('form.near');
  form?.addEventListener('submit', (event) => {
    const address = form.elements.address?.value.trim();
    if (!address) return;
    event.preventDefault();
    ask({ address });
  });
  if (container && geojson) {
    const bounds = JSON.parse(body.dataset.bounds);
    const context = JSON.parse(body.dataset.context || '[]');
    map = drawMap(container, { geojson, kind, column, bounds, context });
    window.civictwin.map = map;
    map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
    map.on('click', (e) => ask({ lon: e.lngLat.lng.toFixed(6), lat: e.lngLat.lat.toFixed(6) }));
    document.getElementById('near-centre')?.addEventListener('click', () => {
      const c = map.getCenter();
      ask({ lon: c.lng.toFixed(6), lat: c.lat.toFixed(6) });
    });
    if (body.dataset.lon && body.dataset.lat) place(Number(body.dataset.lon), Number(body.dataset.lat));
    map.once('idle', ready);
  } else {
    ready();
  }
}

function ready() {
  window.civictwin.readyAtMs = performance.now();
  document.body.dataset.consultState = 'ready';
  document.dispatchEvent(new CustomEvent('civictwin:ready'));
}

start().catch((error) => {
  document.body.dataset.consultState = 'failed';
  const status = document.getElementById('map-status');
  if (status) status.textContent = t('consult.mapFailed', { error: error.message });
});
