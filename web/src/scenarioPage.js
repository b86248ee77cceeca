// The scenario page: pick a comparison and two of its scenarios; see the plain-language summary,
// every engine's KPIs with 95% confidence intervals and whether each difference is distinguishable
// from run-to-run noise, interval charts, and maps of any table the engines return (per street edge,
// building, zone or grid cell: difference or side by side), coloured only where a change stands out
// from noise. Nothing here knows an engine: tables come with their own keys, values and units.

import * as maplibregl from 'maplibre-gl';
import { apiUrl, getJson, transformRequest } from './api.js';
import { GEH_BREAKS, GEH_COLOURS, NO_GEH, fitSentence, gehColourExpression } from './calibration.js';
import { intervalChart } from './chart.js';
import { equityElements } from './equity.js';
import { changeClass, columnLabel, differenceBetween, engineLabel, kpiDisplay, kpisByEngine, mappedPlan, tableValues } from './kpi.js';
import { findLayers, sourceFor, sourceLayerOf } from './mapPage.js';
import { CIVIDIS, PUOR, cssGradient, rampExpression } from './palettes.js';
import { el, formatNumber, formatSigned, formatValue, humanise, inSentence, setStatus } from './ui.js';
import { formatDate, language } from './i18n.js';
import { t } from './viewerText.js';

function scaled(value, scale) {
  return Number.isFinite(value) ? value * scale : value;
}

function interval(low, high, scale = 1) {
  return Number.isFinite(low) && Number.isFinite(high)
    ? t('scenario.interval', { low: formatNumber(low * scale), high: formatNumber(high * scale) })
    : t('scenario.noInterval');
}

/** One row per KPI (the first of each), in the comparison's order. */
function kpiList(c) {
  return kpisByEngine(c).flatMap((group) => group.rows);
}

class ScenarioPage {
  constructor(root) {
    this.root = root;
    this.comparisons = [];
    this.comparison = null;
    this.features = null;
    this.maps = [];
    this.context = [];
  }

  $(selector) {
    return this.root.querySelector(selector);
  }

  async start() {
    const status = this.$('#scenario-status');
    setStatus(status, t('scenario.loading'));
    try {
      this.comparisons = (await getJson('comparisons')).comparisons;
    } catch (error) {
      const advice = error.status === 401 ? t('shell.forgetAdvice') : '';
      setStatus(status, `${t('scenario.loadFailed', { error: error.message })}${advice}`, true);
      return;
    }
    if (!this.comparisons.length) {
      setStatus(status, t('scenario.none'));
      document.body.dataset.scenarioState = 'empty';
      return;
    }
    const select = this.$('#comparison');
    select.replaceChildren(...this.comparisons.map((c) => el('option', { value: c.id }, `${c.id} (${formatDate(c.created)})`)));
    select.onchange = () => this.loadComparison(select.value);
    this.$('#scenario-a').onchange = () => this.render();
    this.$('#scenario-b').onchange = () => this.render();
    this.$('#table-choice').onchange = () => this.loadTable();
    this.$('#table-metric').onchange = () => this.renderMaps();
    this.$('#table-view').onchange = () => this.renderMaps();
    this.context = await contextLayers();
    await this.loadCalibration();
    await this.loadComparison(this.comparisons[0].id);
  }

  /** The latest calibration of the traffic demand: the fit in words and its sites coloured by GEH. */
  async loadCalibration() {
    const verdict = this.$('#calibration-verdict');
    let record = null;
    try {
      const latest = (await getJson('calibration')).calibrations[0];
      record = latest ? await getJson(`calibration/${latest.version}`) : null;
    } catch (error) {
      verdict.textContent = t('scenario.calibrationFailed', { error: error.message });
      return;
    }
    verdict.textContent = fitSentence(record);
    const placed = record ? record.sites.features.filter((f) => f.geometry) : [];
    if (!placed.length) return;
    const panel = el('div', { className: 'diff-map', role: 'region', 'aria-label': t('scenario.gehMap') });
    this.$('#calibration-map').replaceChildren(panel);
    this.calibrationMap = featureMap(panel, { type: 'FeatureCollection', features: placed }, this.context, gehColourExpression(), { width: 3 });
    const labels = ['< 2.5', '2.5–5', '5–10', '≥ 10'];
    this.$('#calibration-legend').replaceChildren(
      el('span', { className: 'legend-caption' }, t('scenario.gehLegend', { limit: formatNumber(GEH_BREAKS[1]) })),
      ...GEH_COLOURS.map((colour, i) => el('span', { className: 'legend-item' }, [el('span', { className: 'swatch', style: `background:${colour}`, 'aria-hidden': 'true' }), labels[i]])),
      el('span', { className: 'legend-item' }, [el('span', { className: 'swatch', style: `background:${NO_GEH}`, 'aria-hidden': 'true' }), t('scenario.notUsed')]),
    );
  }

  async loadComparison(id) {
    const status = this.$('#scenario-status');
    setStatus(status, t('scenario.loadingOne', { id }));
    try {
      this.comparison = await getJson(`comparisons/${encodeURIComponent(id)}`);
    } catch (error) {
      setStatus(status, t('scenario.oneFailed', { id, error: error.message }), true);
      return;
    }
    const c = this.comparison;
    const scenarios = [c.baseline, ...c.plans];
    for (const [selector, value] of [['#scenario-a', c.baseline], ['#scenario-b', c.plans[0] || c.baseline]]) {
      const select = this.$(selector);
      select.replaceChildren(...scenarios.map((s) => el('option', { value: s }, s)));
      select.value = value;
    }
    this.renderNotEvaluated(c);
    this.$('#report-link').href = apiUrl(`comparisons/${encodeURIComponent(id)}/report`);
    this.$('#manifest-link').href = apiUrl(`comparisons/${encodeURIComponent(id)}/manifest`);
    setStatus(status, '');
    await this.render();
  }

  async render() {
    const c = this.comparison;
    const a = this.$('#scenario-a').value;
    const b = this.$('#scenario-b').value;
    await this.renderSummary(c);
    this.renderTable(c, a, b);
    this.renderCharts(c, a, b);
    this.fillTables(c);
    await this.renderEquity(c, b);
    await this.loadTable();
    window.civictwin.scenarioReady = true;
    document.body.dataset.scenarioState = 'ready';
  }

  /** The equity view (zone values by income or age group) for plan ``b``, fetched once per comparison. */
  async renderEquity(c, b) {
    const box = this.$('#equity');
    if (this.equity?.id !== c.id) {
      let view = null;
      try {
        view = await getJson(`comparisons/${encodeURIComponent(c.id)}/equity`);
      } catch {
        view = null; // 404: the twin has no [sociodemographics] equity_by
      }
      this.equity = { id: c.id, view };
    }
    const { view } = this.equity;
    box.replaceChildren(...(view && b !== c.baseline
      ? equityElements(view, b)
      : [el('p', { className: 'hint' }, view ? t('scenario.pickPlanB') : t('scenario.noEquity'))]));
  }

  /**
   * The plans the comparison could not evaluate (their simulation failed the engine's quality check, a
   * gridlock): never offered as a scenario, they are named here with the first failed seed's reason.
   */
  renderNotEvaluated(c) {
    const failed = c.not_evaluated || [];
    const box = this.$('#not-evaluated');
    box.replaceChildren(...failed.map((f) => el('li', {}, t('scenario.notEvaluated', {
      scenario: f.scenario, failed: f.failures.length, runs: f.runs, seed: f.failures[0].seed, reason: f.failures[0].reason,
    }))));
    box.hidden = failed.length === 0;
  }

  /**
   * The comparison's summary: its own sentences (English, written when it ran), or in another language
   * the consultation page's, rebuilt from the numbers in that language (fetched once per comparison).
   */
  async renderSummary(c) {
    let sentences = c.summary;
    if (language() !== 'en') {
      if (this.summary?.id !== c.id) {
        try {
          const data = await getJson(`consultations/${encodeURIComponent(c.id)}/data?lang=${language()}`);
          this.summary = { id: c.id, sentences: data.summary };
        } catch {
          this.summary = { id: c.id, sentences: c.summary }; // the comparison's own words, then
        }
      }
      sentences = this.summary.sentences;
    }
    this.$('#summary-list').replaceChildren(...sentences.map((s) => el('li', {}, s)));
  }

  renderTable(c, a, b) {
    const table = this.$('#kpi-table');
    const value = (kpi, scenario) => c.kpis.find((k) => k.kpi === kpi && k.scenario === scenario);
    const same = a === b;
    const head = el('tr', {}, [
      el('th', { scope: 'col' }, t('scenario.indicator')),
      el('th', { scope: 'col' }, [`${a}`, el('br'), el('span', { className: 'sub' }, t('scenario.meanCi'))]),
      el('th', { scope: 'col' }, [`${b}`, el('br'), el('span', { className: 'sub' }, t('scenario.meanCi'))]),
      el('th', { scope: 'col' }, [t('scenario.difference'), el('br'), el('span', { className: 'sub' }, t('scenario.diffCi', { a, b }))]),
      el('th', { scope: 'col' }, t('scenario.verdict')),
    ]);
    const groups = kpisByEngine(c);
    const rowFor = (first) => {
      const { kpi } = first;
      const { label, scale, diffUnit } = kpiDisplay(first);
      const cell = (row, scenario) =>
        row
          ? el('td', { className: 'num', dataset: { label: scenario } }, el('span', {}, [formatNumber(scaled(row.mean, scale)), el('br'), el('span', { className: 'ci' }, interval(row.ci_low, row.ci_high, scale)), row.n ? el('span', { className: 'n' }, ` · n=${row.n}`) : null]))
          : el('td', { dataset: { label: scenario } }, '–');
      const d = same ? null : differenceBetween(c, kpi, a, b);
      const verdict = d ? verdictCell(d) : el('td', { className: 'verdict', dataset: { label: t('scenario.verdict') } }, same ? t('scenario.sameScenario') : t('scenario.bothPlans'));
      return el('tr', { dataset: { kpi } }, [
        el('th', { scope: 'row' }, label),
        cell(value(kpi, a), a),
        cell(value(kpi, b), b),
        el('td', { className: 'num', dataset: { label: `${b} − ${a}` } }, el('span', {}, d ? [formatSigned(scaled(d.mean, scale)) + diffUnit, el('br'), el('span', { className: 'ci' }, interval(d.ci_low, d.ci_high, scale))] : '–')),
        verdict,
      ]);
    };
    const rows = groups.flatMap(({ engine, rows: firsts }) => [
      ...(groups.length > 1 ? [el('tr', { className: 'engine' }, el('th', { scope: 'rowgroup', colSpan: 5 }, engineLabel('engine', engine)))] : []),
      ...firsts.map(rowFor),
    ]);
    table.replaceChildren(
      el('caption', {}, t('scenario.caption', { a, b })),
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

  /** The comparison's tables in the table picker (by label), keeping the current choice if it is there. */
  fillTables(c) {
    const select = this.$('#table-choice');
    const previous = select.value;
    const tables = c.tables || [];
    select.replaceChildren(...tables.map((table) => el('option', { value: table.id }, table.label ? engineLabel('table', table.label) : table.id)));
    if (tables.some((t) => t.id === previous)) select.value = previous;
  }

  /** The per-key differences of the chosen table for the mapped plan, then its value columns. */
  async loadTable() {
    const c = this.comparison;
    const a = this.$('#scenario-a').value;
    const b = this.$('#scenario-b').value;
    const tableId = this.$('#table-choice').value;
    const target = mappedPlan(c, a, b);
    const note = this.$('#table-note');
    this.features = null;
    if (!tableId) {
      note.textContent = t('scenario.noTables');
    } else if (!target) {
      note.textContent = t('scenario.pickTwo');
    } else {
      try {
        this.features = await getJson(`comparisons/${encodeURIComponent(c.id)}/tables/${encodeURIComponent(tableId)}/${encodeURIComponent(target.plan)}`);
        this.sign = b === c.baseline ? -1 : 1;
        note.textContent = t('scenario.coloured', { note: target.note });
      } catch (error) {
        note.textContent = t('scenario.noResults', { table: tableId, plan: target.plan, error: error.message });
      }
    }
    this.fillMetrics(tableId);
    this.renderMaps();
  }

  fillMetrics(tableId) {
    const select = this.$('#table-metric');
    const values = tableValues(this.comparison, tableId);
    const previous = select.value;
    select.replaceChildren(...values.map((v) => el('option', { value: v.column }, columnLabel(v.column, v.unit))));
    if (values.some((v) => v.column === previous)) select.value = previous;
  }

  renderMaps() {
    for (const map of this.maps) map.remove();
    this.maps = [];
    window.civictwin.tableMaps = this.maps;
    const container = this.$('#diff-maps');
    const legend = this.$('#diff-legend');
    container.replaceChildren();
    legend.replaceChildren();
    const column = this.$('#table-metric').value;
    if (!this.features || !column) return;
    const unit = (tableValues(this.comparison, this.$('#table-choice').value).find((v) => v.column === column) || {}).unit || '';
    const viewSelect = this.$('#table-view');
    const props = this.features.features[0]?.properties || {};
    const canSideBySide = `${column}_base` in props && `${column}_plan` in props;
    viewSelect.querySelector('option[value="side"]').disabled = !canSideBySide;
    if (viewSelect.value === 'side' && canSideBySide) {
      this.sideBySide(container, legend, column, unit);
    } else {
      viewSelect.value = 'diff';
      this.differenceMap(container, legend, column, unit);
    }
  }

  differenceMap(container, legend, column, unit) {
    const sign = this.sign || 1;
    const metric = `${column}_diff`;
    const real = this.features.features.filter((f) => changeClass(f.properties, column) === 'real');
    const values = real.map((f) => sign * Number(f.properties[metric])).filter(Number.isFinite);
    const limit = Math.max(...values.map(Math.abs), 0) || 1;
    const input = ['*', sign, ['to-number', ['get', metric], 0]];
    const hasFlag = this.features.features.some((f) => `${column}_real` in f.properties);
    const colour = hasFlag
      ? ['case', ['==', ['get', `${column}_real`], true], rampExpression(input, -limit, limit, PUOR), '#e0e0e0']
      : rampExpression(input, -limit, limit, PUOR);
    const panel = el('div', { className: 'diff-map', role: 'region', 'aria-label': t('scenario.changeMap', { what: inSentence(column) }) });
    container.append(panel);
    this.maps.push(featureMap(panel, this.features, this.context, colour, { width: ['interpolate', ['linear'], ['abs', input], 0, 1.5, limit, 6] }));
    this.$('#table-count').textContent = t('scenario.count', { real: formatNumber(real.length), total: formatNumber(this.features.features.length), what: inSentence(column) });
    legend.append(
      el('span', { className: 'legend-caption' }, t('scenario.changeLegend', { what: columnLabel(column, unit) })),
      legendRamp(PUOR, t('scenario.lower', { value: formatSigned(-limit) }), '0', t('scenario.higher', { value: formatSigned(limit) })),
    );
  }

  sideBySide(container, legend, column, unit) {
    const values = this.features.features.flatMap((f) => [Number(f.properties[`${column}_base`]), Number(f.properties[`${column}_plan`])]).filter(Number.isFinite);
    const min = values.length ? Math.min(...values) : 0;
    const max = values.length ? Math.max(...values) : 1;
    const c = this.comparison;
    const plan = mappedPlan(c, this.$('#scenario-a').value, this.$('#scenario-b').value).plan;
    for (const [suffix, name] of [['_base', c.baseline], ['_plan', plan]]) {
      const input = ['to-number', ['get', `${column}${suffix}`], min];
      const panel = el('div', { className: 'diff-map', role: 'region', 'aria-label': t('scenario.sideMap', { what: inSentence(column), scenario: name }) }, [el('span', { className: 'map-label' }, name)]);
      container.append(panel);
      this.maps.push(featureMap(panel, this.features, this.context, rampExpression(input, min, max, CIVIDIS), { width: 3 }));
    }
    syncMaps(this.maps);
    this.$('#table-count').textContent = '';
    legend.append(el('span', { className: 'legend-caption' }, columnLabel(column, unit)), legendRamp(CIVIDIS, formatNumber(min), '', formatNumber(max)));
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

/** Green areas and building footprints, drawn faintly under the results so people can find their way. */
async function contextLayers() {
  try {
    return (await findLayers()).filter((l) => l.key === 'green' || l.key === 'buildings');
  } catch {
    return []; // the results alone still answer the question
  }
}

const CONTEXT_FILL = { green: '#cfe3d9', buildings: '#d3d6d9' };

/** The geometry kind of a collection: 'line', 'fill' (areas) or 'circle' (points), from its first shape. */
function geometryKind(collection) {
  const type = collection.features.find((f) => f.geometry)?.geometry.type || '';
  if (type.includes('Line')) return 'line';
  if (type.includes('Point')) return 'circle';
  return 'fill';
}

/**
 * A map of a table's features over faint context, coloured by `colour` (a MapLibre expression): lines on
 * the right of their direction (streets are directed edges), areas filled under the context's outlines,
 * points as dots. The data layer's id is `features`.
 */
function featureMap(container, collection, context, colour, { width }) {
  const kind = geometryKind(collection);
  if (kind === 'line') {
    return overlayMap(container, 'features', collection, context, {
      above: [
        { id: 'features-all', type: 'line', source: 'features', paint: { 'line-color': '#9e9e9e', 'line-width': 0.8, 'line-offset': 1.5 } },
        { id: 'features', type: 'line', source: 'features', layout: { 'line-cap': 'round' }, paint: { 'line-color': colour, 'line-width': width, 'line-offset': 1.5 } },
      ],
    });
  }
  if (kind === 'circle') {
    return overlayMap(container, 'features', collection, context, {
      above: [{ id: 'features', type: 'circle', source: 'features', paint: { 'circle-color': colour, 'circle-radius': 4, 'circle-stroke-color': '#616161', 'circle-stroke-width': 0.5 } }],
    });
  }
  return overlayMap(container, 'features', collection, context, {
    below: [{ id: 'features', type: 'fill', source: 'features', paint: { 'fill-color': colour, 'fill-opacity': 0.85 } }],
    above: [{ id: 'features-outlines', type: 'line', source: 'features', paint: { 'line-color': '#616161', 'line-width': 0.6 } }],
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
  const word = d.distinguishable ? t('scenario.distinguishable') : t('scenario.withinNoise');
  const mark = d.distinguishable ? '●' : '○';
  return el('td', { className: `verdict ${d.distinguishable ? 'distinguishable' : 'noise'}`, dataset: { label: t('scenario.verdict') } }, el('span', {}, [
    el('strong', {}, `${mark} ${word}`),
    // The comparison's own words are English (written when it ran): shown in the English viewer only.
    d.sign === 1 && d.words && language() === 'en' ? el('span', { className: 'words' }, [el('br'), d.words]) : null,
  ]));
}

/** Start the scenario page inside `root` (the #page-scenarios section). */
export async function startScenarioPage(root) {
  const page = new ScenarioPage(root);
  window.civictwin.scenarioPage = page;
  await page.start();
  return page;
}
