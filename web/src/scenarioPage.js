// The scenario page: pick a comparison and two of its scenarios; see the plain-language summary,
// the KPI table with 95% confidence intervals and whether each difference is distinguishable from
// run-to-run noise, interval charts, maps of edge-level differences (single or side by side), and a
// map of the neighbourhoods (analysis zones) whose car traffic changes beyond noise.

import * as maplibregl from 'maplibre-gl';
import { apiUrl, getJson, transformRequest } from './api.js';
import { intervalChart } from './chart.js';
import { differenceBetween, kpiDisplay, mappedPlan } from './kpi.js';
import { findLayers, sourceFor, sourceLayerOf } from './mapPage.js';
import { CIVIDIS, PUOR, cssGradient, rampExpression } from './palettes.js';
import { el, formatNumber, formatSigned, formatValue, humanise, inSentence, setStatus } from './ui.js';

const DIFF_SUFFIX = '_diff';

function scaled(value, scale) {
  return Number.isFinite(value) ? value * scale : value;
}

function interval(low, high, scale = 1) {
  return Number.isFinite(low) && Number.isFinite(high)
    ? `${formatNumber(low * scale)} to ${formatNumber(high * scale)}`
    : 'no interval';
}

/** One row per KPI (the first of each), in the comparison's order. */
function kpiList(c) {
  return [...new Map(c.kpis.map((k) => [k.kpi, k])).values()];
}

class ScenarioPage {
  constructor(root) {
    this.root = root;
    this.comparisons = [];
    this.comparison = null;
    this.edges = null;
    this.maps = [];
    this.zoneMap = null;
    this.context = [];
  }

  $(selector) {
    return this.root.querySelector(selector);
  }

  async start() {
    const status = this.$('#scenario-status');
    setStatus(status, 'Loading comparisons…');
    try {
      this.comparisons = (await getJson('comparisons')).comparisons;
    } catch (error) {
      const advice = error.status === 401 ? ' Press “Forget” or paste another token.' : '';
      setStatus(status, `Comparisons could not be loaded: ${error.message}.${advice}`, true);
      return;
    }
    if (!this.comparisons.length) {
      setStatus(status, 'No complete comparisons yet: run `civictwin compare BASE PLAN` first.');
      document.body.dataset.scenarioState = 'empty';
      return;
    }
    const select = this.$('#comparison');
    select.replaceChildren(...this.comparisons.map((c) => el('option', { value: c.id }, `${c.id} (${c.created.slice(0, 10)})`)));
    select.onchange = () => this.loadComparison(select.value);
    this.$('#scenario-a').onchange = () => this.render();
    this.$('#scenario-b').onchange = () => this.render();
    this.$('#edge-metric').onchange = () => this.renderMaps();
    this.$('#edge-view').onchange = () => this.renderMaps();
    this.context = await contextLayers();
    await this.loadComparison(this.comparisons[0].id);
  }

  async loadComparison(id) {
    const status = this.$('#scenario-status');
    setStatus(status, `Loading ${id}…`);
    try {
      this.comparison = await getJson(`comparisons/${encodeURIComponent(id)}`);
    } catch (error) {
      setStatus(status, `Comparison ${id} could not be loaded: ${error.message}`, true);
      return;
    }
    const c = this.comparison;
    const scenarios = [c.baseline, ...c.plans];
    for (const [selector, value] of [['#scenario-a', c.baseline], ['#scenario-b', c.plans[0] || c.baseline]]) {
      const select = this.$(selector);
      select.replaceChildren(...scenarios.map((s) => el('option', { value: s }, s)));
      select.value = value;
    }
    this.$('#report-link').href = apiUrl(`comparisons/${encodeURIComponent(id)}/report`);
    this.$('#manifest-link').href = apiUrl(`comparisons/${encodeURIComponent(id)}/manifest`);
    setStatus(status, '');
    await this.render();
  }

  async render() {
    const c = this.comparison;
    const a = this.$('#scenario-a').value;
    const b = this.$('#scenario-b').value;
    this.renderSummary(c);
    this.renderTable(c, a, b);
    this.renderCharts(c, a, b);
    await this.loadEdges(c, a, b);
    await this.loadZones(c, a, b);
    window.civictwin.scenarioReady = true;
    document.body.dataset.scenarioState = 'ready';
  }

  renderSummary(c) {
    this.$('#summary-list').replaceChildren(...c.summary.map((s) => el('li', {}, s)));
  }

  renderTable(c, a, b) {
    const table = this.$('#kpi-table');
    const kpis = kpiList(c);
    const value = (kpi, scenario) => c.kpis.find((k) => k.kpi === kpi && k.scenario === scenario);
    const same = a === b;
    const head = el('tr', {}, [
      el('th', { scope: 'col' }, 'Indicator'),
      el('th', { scope: 'col' }, [`${a}`, el('br'), el('span', { className: 'sub' }, 'mean (95% CI)')]),
      el('th', { scope: 'col' }, [`${b}`, el('br'), el('span', { className: 'sub' }, 'mean (95% CI)')]),
      el('th', { scope: 'col' }, [`Difference`, el('br'), el('span', { className: 'sub' }, `${b} − ${a} (95% CI)`)]),
      el('th', { scope: 'col' }, 'Verdict'),
    ]);
    const rows = kpis.map((first) => {
      const { kpi } = first;
      const { label, scale, diffUnit } = kpiDisplay(first);
      const cell = (row, scenario) =>
        row
          ? el('td', { className: 'num', dataset: { label: scenario } }, el('span', {}, [formatNumber(scaled(row.mean, scale)), el('br'), el('span', { className: 'ci' }, interval(row.ci_low, row.ci_high, scale)), row.n ? el('span', { className: 'n' }, ` · n=${row.n}`) : null]))
          : el('td', { dataset: { label: scenario } }, '–');
      const d = same ? null : differenceBetween(c, kpi, a, b);
      const verdict = d ? verdictCell(d) : el('td', { className: 'verdict', dataset: { label: 'Verdict' } }, same ? 'Same scenario' : 'Not computed: both are plans; each is compared with the baseline.');
      return el('tr', { dataset: { kpi } }, [
        el('th', { scope: 'row' }, label),
        cell(value(kpi, a), a),
        cell(value(kpi, b), b),
        el('td', { className: 'num', dataset: { label: `${b} − ${a}` } }, el('span', {}, d ? [formatSigned(scaled(d.mean, scale)) + diffUnit, el('br'), el('span', { className: 'ci' }, interval(d.ci_low, d.ci_high, scale))] : '–')),
        verdict,
      ]);
    });
    table.replaceChildren(
      el('caption', {}, `Key indicators: ${a} and ${b}, mean over the seeds with 95% confidence intervals`),
      el('thead', {}, head),
      el('tbody', {}, rows),
    );
  }

  renderCharts(c, a, b) {
    const charts = kpiList(c).map((first) => {
      const { label, scale } = kpiDisplay(first);
      const rows = [a, b].filter((s, i) => i === 0 || s !== a).map((s) => {
        const k = c.kpis.find((r) => r.kpi === first.kpi && r.scenario === s) || {};
        return { label: s, mean: scaled(k.mean, scale), ci_low: scaled(k.ci_low, scale), ci_high: scaled(k.ci_high, scale) };
      });
      return el('figure', { className: 'chart' }, [el('figcaption', {}, label), intervalChart(label, rows)]);
    });
    this.$('#kpi-charts').replaceChildren(...charts);
  }

  async loadEdges(c, a, b) {
    const target = mappedPlan(c, a, b);
    const note = this.$('#edge-note');
    this.edges = null;
    if (!target) {
      note.textContent = 'Pick two different scenarios to see where traffic changes.';
      this.renderMaps();
      return;
    }
    try {
      this.edges = await getJson(`comparisons/${encodeURIComponent(c.id)}/edges/${encodeURIComponent(target.plan)}`);
      this.edgeSign = b === c.baseline ? -1 : 1;
      note.textContent = `Edges of the road network: ${target.note}.`;
    } catch (error) {
      note.textContent = `No edge-level results for ${target.plan}: ${error.message}`;
    }
    this.fillMetrics();
    this.renderMaps();
  }

  /** The per-zone change in car traffic: zones coloured only where it stands out from noise. */
  async loadZones(c, a, b) {
    this.zoneMap?.remove();
    this.zoneMap = null;
    window.civictwin.zoneMap = null;
    const container = this.$('#zone-map');
    const legend = this.$('#zone-legend');
    const note = this.$('#zone-note');
    container.replaceChildren();
    legend.replaceChildren();
    const target = mappedPlan(c, a, b);
    if (!target) {
      note.textContent = 'Pick two different scenarios to see which neighbourhoods change.';
      return;
    }
    let zones;
    try {
      zones = await getJson(`comparisons/${encodeURIComponent(c.id)}/zones/${encodeURIComponent(target.plan)}`);
    } catch (error) {
      note.textContent = `No per-zone results for ${target.plan}: ${error.message}`;
      return;
    }
    const sign = b === c.baseline ? -1 : 1;
    const real = zones.features.filter((f) => f.properties.vehicle_km_real === true);
    const values = real.map((f) => sign * Number(f.properties.vehicle_km_diff)).filter(Number.isFinite);
    const limit = Math.max(...values.map(Math.abs), 0) || 1;
    note.textContent = `${real.length} of ${zones.features.length} zones change their car traffic (vehicle-km) `
      + `beyond run-to-run noise (${target.note}); grey zones show no change beyond noise.`;
    const panel = el('div', { className: 'diff-map', role: 'region', 'aria-label': 'Map of the change in car traffic per zone' });
    container.append(panel);
    const input = ['*', sign, ['to-number', ['get', 'vehicle_km_diff'], 0]];
    const colour = ['case', ['==', ['get', 'vehicle_km_real'], true], rampExpression(input, -limit, limit, PUOR), '#e0e0e0'];
    this.zoneMap = zoneMap(panel, zones, this.context, colour);
    window.civictwin.zoneMap = this.zoneMap;
    legend.append(
      el('span', { className: 'legend-caption' }, 'Change in vehicle-km per zone (beyond noise)'),
      legendRamp(PUOR, `${formatSigned(-limit)} (lower)`, '0', `${formatSigned(limit)} (higher)`),
    );
  }

  fillMetrics() {
    const select = this.$('#edge-metric');
    const props = this.edges?.features?.[0]?.properties || {};
    const metrics = Object.keys(props).filter((k) => k.endsWith(DIFF_SUFFIX));
    const previous = select.value;
    select.replaceChildren(...metrics.map((m) => el('option', { value: m }, humanise(m.slice(0, -DIFF_SUFFIX.length)))));
    if (metrics.includes(previous)) select.value = previous;
  }

  renderMaps() {
    for (const map of this.maps) map.remove();
    this.maps = [];
    window.civictwin.diffMaps = this.maps;
    const container = this.$('#diff-maps');
    const legend = this.$('#diff-legend');
    container.replaceChildren();
    legend.replaceChildren();
    const metric = this.$('#edge-metric').value;
    if (!this.edges || !metric) return;
    const base = metric.slice(0, -DIFF_SUFFIX.length);
    const props = this.edges.features[0]?.properties || {};
    const canSideBySide = `${base}_base` in props && `${base}_plan` in props;
    const viewSelect = this.$('#edge-view');
    viewSelect.querySelector('option[value="side"]').disabled = !canSideBySide;
    if (viewSelect.value === 'side' && canSideBySide) {
      this.sideBySide(container, legend, base);
    } else {
      viewSelect.value = 'diff';
      this.differenceMap(container, legend, metric, base);
    }
  }

  differenceMap(container, legend, metric, base) {
    const sign = this.edgeSign || 1;
    const values = this.edges.features.map((f) => sign * Number(f.properties[metric])).filter(Number.isFinite);
    const limit = Math.max(...values.map(Math.abs), 0) || 1;
    const input = ['*', sign, ['to-number', ['get', metric], 0]];
    const panel = el('div', { className: 'diff-map', role: 'region', 'aria-label': `Map of the change in ${inSentence(base)}` });
    container.append(panel);
    this.maps.push(edgeMap(panel, this.edges, this.context, {
      'line-color': rampExpression(input, -limit, limit, PUOR),
      'line-width': ['interpolate', ['linear'], ['abs', input], 0, 1.5, limit, 6],
    }));
    legend.append(
      el('span', { className: 'legend-caption' }, `Change in ${inSentence(base)}`),
      legendRamp(PUOR, `${formatSigned(-limit)} (lower)`, '0', `${formatSigned(limit)} (higher)`),
    );
  }

  sideBySide(container, legend, base) {
    const values = this.edges.features.flatMap((f) => [Number(f.properties[`${base}_base`]), Number(f.properties[`${base}_plan`])]).filter(Number.isFinite);
    const min = values.length ? Math.min(...values) : 0;
    const max = values.length ? Math.max(...values) : 1;
    const c = this.comparison;
    const plan = mappedPlan(c, this.$('#scenario-a').value, this.$('#scenario-b').value).plan;
    for (const [suffix, name] of [['_base', c.baseline], ['_plan', plan]]) {
      const input = ['to-number', ['get', `${base}${suffix}`], min];
      const panel = el('div', { className: 'diff-map', role: 'region', 'aria-label': `Map of ${inSentence(base)} in ${name}` }, [el('span', { className: 'map-label' }, name)]);
      container.append(panel);
      this.maps.push(edgeMap(panel, this.edges, this.context, { 'line-color': rampExpression(input, min, max, CIVIDIS), 'line-width': 3 }));
    }
    syncMaps(this.maps);
    legend.append(el('span', { className: 'legend-caption' }, humanise(base)), legendRamp(CIVIDIS, formatNumber(min), '', formatNumber(max)));
  }
}

function legendRamp(colours, low, middle, high) {
  return el('div', { className: 'legend-ramp' }, [
    el('span', { className: 'ramp', style: `background:${cssGradient(colours)}`, 'aria-hidden': 'true' }),
    el('span', { className: 'ramp-labels' }, [el('span', {}, low), el('span', {}, middle), el('span', {}, high)]),
  ]);
}

function collectionBounds(collection) {
  let w = Infinity, s = Infinity, e = -Infinity, n = -Infinity;
  const visit = (c) => {
    if (typeof c[0] === 'number') {
      w = Math.min(w, c[0]); e = Math.max(e, c[0]); s = Math.min(s, c[1]); n = Math.max(n, c[1]);
    } else c.forEach(visit);
  };
  for (const f of collection.features) if (f.geometry) visit(f.geometry.coordinates);
  return Number.isFinite(w) ? [[w, s], [e, n]] : null;
}

/** Green areas and building footprints, drawn faintly under the edges so people can find their way. */
async function contextLayers() {
  try {
    return (await findLayers()).filter((l) => l.key === 'green' || l.key === 'buildings');
  } catch {
    return []; // the edges alone still answer the question
  }
}

const CONTEXT_FILL = { green: '#cfe3d9', buildings: '#d3d6d9' };

/** A map of the edges over faint context, coloured by `paint`; directed edges drawn on their right. */
function edgeMap(container, edges, context, paint) {
  return overlayMap(container, 'edges', edges, context, {
    above: [
      { id: 'edges-all', type: 'line', source: 'edges', paint: { 'line-color': '#9e9e9e', 'line-width': 0.8, 'line-offset': 1.5 } },
      { id: 'edges', type: 'line', source: 'edges', layout: { 'line-cap': 'round' }, paint: { ...paint, 'line-offset': 1.5 } },
    ],
  });
}

/** A map of the zones, filled with `colour` (a MapLibre expression), under faint context. */
function zoneMap(container, zones, context, colour) {
  return overlayMap(container, 'zones', zones, context, {
    below: [{ id: 'zones', type: 'fill', source: 'zones', paint: { 'fill-color': colour, 'fill-opacity': 0.85 } }],
    above: [{ id: 'zone-outlines', type: 'line', source: 'zones', paint: { 'line-color': '#616161', 'line-width': 0.6 } }],
    contextOpacity: 0.35,
  });
}

/**
 * A map of one GeoJSON collection (source `name`, fitted to its bounds) with the context layers (green
 * areas, buildings) between the `below` and `above` layers; clicking a feature of layer `name` shows
 * its values.
 */
function overlayMap(container, name, collection, context, { below = [], above = [], contextOpacity = 1 }) {
  const bounds = collectionBounds(collection);
  const sources = { [name]: { type: 'geojson', data: collection } };
  for (const layer of context) sources[layer.key] = sourceFor(layer);
  const map = new maplibregl.Map({
    container,
    style: {
      version: 8,
      sources,
      layers: [
        { id: 'background', type: 'background', paint: { 'background-color': '#eceff1' } },
        ...below,
        ...context.map((layer) => ({
          id: `context-${layer.key}`,
          type: 'fill',
          source: layer.key,
          'source-layer': sourceLayerOf(layer),
          paint: { 'fill-color': CONTEXT_FILL[layer.key], 'fill-opacity': contextOpacity },
        })),
        ...above,
      ],
    },
    bounds: bounds || undefined,
    center: bounds ? undefined : [0, 0],
    zoom: bounds ? undefined : 1,
    fitBoundsOptions: { padding: 16 },
    attributionControl: { compact: true },
    transformRequest,
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  map.on('click', name, (e) => showFeature(map, e));
  return map;
}

function showFeature(map, e) {
  const f = e.features[0];
  const rows = Object.entries(f.properties).map(([k, v]) => `<tr><th scope="row">${escapeHtml(humanise(k))}</th><td>${escapeHtml(formatValue(k, v))}</td></tr>`);
  new maplibregl.Popup({ maxWidth: '280px' }).setLngLat(e.lngLat).setHTML(`<table class="attributes">${rows.join('')}</table>`).addTo(map);
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]);
}

/** Keep side-by-side maps on the same view. */
function syncMaps(maps) {
  let syncing = false;
  for (const source of maps) {
    source.on('move', () => {
      if (syncing) return;
      syncing = true;
      for (const other of maps) {
        if (other !== source) other.jumpTo({ center: source.getCenter(), zoom: source.getZoom(), bearing: source.getBearing(), pitch: source.getPitch() });
      }
      syncing = false;
    });
  }
}

function verdictCell(d) {
  const word = d.distinguishable ? 'Distinguishable from noise' : 'Within noise';
  const mark = d.distinguishable ? '●' : '○';
  return el('td', { className: `verdict ${d.distinguishable ? 'distinguishable' : 'noise'}`, dataset: { label: 'Verdict' } }, el('span', {}, [
    el('strong', {}, `${mark} ${word}`),
    d.sign === 1 && d.words ? el('span', { className: 'words' }, [el('br'), d.words]) : null,
  ]));
}

/** Start the scenario page inside `root` (the #page-scenarios section). */
export async function startScenarioPage(root) {
  const page = new ScenarioPage(root);
  window.civictwin.scenarioPage = page;
  await page.start();
  return page;
}
