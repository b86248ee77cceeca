// The map page: the twin's own layers from the server's vector tiles on a plain background
// (no external basemap, no web fonts), a layer switcher with legends, and feature inspection.

import * as maplibregl from 'maplibre-gl';
import { absoluteTemplate, getJson, getJsonAt, transformRequest } from './api.js';
import { Lod2Layer, ROOF_COLOUR } from './lod2Layer.js';
import { heightWithoutLod2 } from './lod2Mesh.js';
import { boxOf, grownBox, needsFetch, withBox } from './lod2View.js';
import { GREYS, OKABE_ITO, VIRIDIS, cssGradient, quantileBreaks, rampExpression, sample, stepExpression } from './palettes.js';
import { el, formatNumber, formatValue, humanise, setStatus } from './ui.js';
import { t } from './viewerText.js';

/** The layers the viewer shows, each from the first of its candidate tables the server publishes (named in findLayers, in the viewer's language). */
const LAYER_SPECS = [
  { key: 'zones', tables: ['zones'] },
  { key: 'green', tables: ['green'] },
  { key: 'roads', tables: ['roads', 'network_edges'] },
  { key: 'buildings', tables: ['buildings_3d', 'buildings'] },
  { key: 'stops', tables: ['transit_stops'] },
];

/** Map layer ids drawn for each layer key (the first one is the one that is inspected on click). */
const STYLE_LAYERS = {
  zones: ['zones-fill', 'zones-outline'],
  green: ['green-fill', 'green-outline'],
  roads: ['roads-line'],
  buildings: ['buildings-3d'],
  stops: ['stops-circle'],
};

const BACKGROUND = '#eceff1';
const TERRAIN_SOURCE = 'terrain';
let terrainUrl = null;
/** `GET /buildings/lod2.json` when the twin has a 3D city model's surfaces the caller may read (named by `GET /tiles`). */
let lod2Url = null;
const LOD2_LAYER = 'buildings-lod2';
/** A dark outline sets green areas apart from the zone colours beneath them, whatever the colour vision. */
const GREEN_EDGE = '#00553e';
const DEFAULT_HEIGHT_M = 3;
const ZONE_ID_FIELDS = new Set(['zone_id', 'h3', 'id', 'osm_id']);

/**
 * The layers to draw: for each spec, the first candidate table among the tile sets the server lists
 * for this caller (`GET /tiles` lists only layers the caller may read), with its TileJSON.
 */
export async function findLayers() {
  const listing = await getJson('tiles');
  terrainUrl = listing.terrain || null;
  lod2Url = listing.lod2 || null;
  const published = new Set(listing.tilesets.map((t) => t.id));
  const chosen = LAYER_SPECS.map((spec) => ({ spec: { ...spec, label: t(`layer.${spec.key}`), one: t(`layer.${spec.key}.one`) }, table: spec.tables.find((name) => published.has(name)) })).filter((c) => c.table);
  return Promise.all(
    chosen.map(async ({ spec, table }) => ({ ...spec, table, tilejson: await getJson(`tiles/${encodeURIComponent(table)}.json`) })),
  );
}

/** A MapLibre vector source from a layer's TileJSON (with its attribution, e.g. for ODbL data). */
export function sourceFor(layer) {
  const tj = layer.tilejson;
  const tiles = (tj.tiles || []).map(absoluteTemplate);
  const source = { type: 'vector', tiles };
  if (tj.attribution) source.attribution = tj.attribution;
  if (Number.isFinite(tj.minzoom)) source.minzoom = tj.minzoom;
  if (Number.isFinite(tj.maxzoom)) source.maxzoom = tj.maxzoom;
  if (isUsefulBounds(tj.bounds)) source.bounds = tj.bounds;
  return source;
}

/** The name of the layer inside the tiles (the TileJSON's first vector layer, else the table). */
export function sourceLayerOf(layer) {
  const vectorLayers = layer.tilejson.vector_layers || [];
  return vectorLayers.length ? vectorLayers[0].id : layer.table;
}

function isUsefulBounds(b) {
  return Array.isArray(b) && b.length === 4 && b.every(Number.isFinite) && b[2] - b[0] < 10 && b[3] - b[1] < 10;
}

/** Style layers for one published layer; colours from palettes.js. */
function styleLayers(layer) {
  const common = { source: layer.key, 'source-layer': sourceLayerOf(layer) };
  switch (layer.key) {
    case 'zones':
      return [
        { id: 'zones-fill', type: 'fill', ...common, paint: { 'fill-color': VIRIDIS[4], 'fill-opacity': 0.55 } },
        { id: 'zones-outline', type: 'line', ...common, paint: { 'line-color': '#ffffff', 'line-width': 0.6 } },
      ];
    case 'green':
      return [
        { id: 'green-fill', type: 'fill', ...common, paint: { 'fill-color': OKABE_ITO.bluishGreen, 'fill-opacity': 0.55 } },
        { id: 'green-outline', type: 'line', ...common, paint: { 'line-color': GREEN_EDGE, 'line-width': 1.2 } },
      ];
    case 'roads':
      return [
        {
          id: 'roads-line',
          type: 'line',
          ...common,
          layout: { 'line-cap': 'round', 'line-join': 'round' },
          paint: {
            'line-color': '#4d4d4d',
            'line-width': ['interpolate', ['linear'], ['zoom'], 12, 0.5, 16, 2.5, 18, 6],
          },
        },
      ];
    case 'buildings':
      return [
        {
          id: 'buildings-3d',
          type: 'fill-extrusion',
          ...common,
          paint: {
            'fill-extrusion-color': rampExpression(heightExpression(), 0, 40, GREYS),
            'fill-extrusion-height': heightExpression(),
            'fill-extrusion-base': 0,
            'fill-extrusion-opacity': 0.9,
          },
        },
      ];
    case 'stops':
      return [
        {
          id: 'stops-circle',
          type: 'circle',
          ...common,
          paint: {
            'circle-color': OKABE_ITO.blue,
            'circle-radius': ['interpolate', ['linear'], ['zoom'], 12, 3, 17, 7],
            'circle-stroke-color': '#ffffff',
            'circle-stroke-width': 1.5,
          },
        },
      ];
    default:
      return [];
  }
}

function heightExpression() {
  return ['coalesce', ['to-number', ['get', 'height_m'], DEFAULT_HEIGHT_M], DEFAULT_HEIGHT_M];
}

function selectionLayers() {
  return [
    { id: 'selection-line', type: 'line', source: 'selection', paint: { 'line-color': OKABE_ITO.black, 'line-width': 3 } },
    {
      id: 'selection-point',
      type: 'circle',
      source: 'selection',
      filter: ['==', ['geometry-type'], 'Point'],
      paint: { 'circle-radius': 9, 'circle-color': 'rgba(0,0,0,0)', 'circle-stroke-color': OKABE_ITO.black, 'circle-stroke-width': 3 },
    },
  ];
}

/** The MapLibre style: a plain background, the twin's layers, and a selection outline. No glyphs needed. */
export function buildStyle(layers, terrain = null) {
  const sources = { selection: { type: 'geojson', data: { type: 'FeatureCollection', features: [] } } };
  for (const layer of layers) sources[layer.key] = sourceFor(layer);
  const style = {
    version: 8,
    name: 'civictwin',
    sources,
    layers: [
      { id: 'background', type: 'background', paint: { 'background-color': BACKGROUND } },
      ...layers.flatMap(styleLayers),
      ...selectionLayers(),
    ],
  };
  if (terrain) {
    sources[TERRAIN_SOURCE] = terrainSource(terrain);
    style.terrain = { source: TERRAIN_SOURCE, exaggeration: 1 };
  }
  return style;
}

/**
 * A MapLibre raster-dem source from the terrain's TileJSON (`GET /terrain.json`: Terrarium-encoded
 * PNG tiles of the twin's DEM). Buildings' extrusions then stand on the terrain.
 */
export function terrainSource(tilejson) {
  const source = {
    type: 'raster-dem',
    tiles: (tilejson.tiles || []).map(absoluteTemplate),
    tileSize: tilejson.tileSize || 256,
    encoding: tilejson.encoding || 'terrarium',
  };
  if (Number.isFinite(tilejson.maxzoom)) source.maxzoom = tilejson.maxzoom;
  if (isUsefulBounds(tilejson.bounds)) source.bounds = tilejson.bounds;
  if (tilejson.attribution) source.attribution = tilejson.attribution;
  return source;
}

/** The terrain's TileJSON, or null when the twin has none (or the caller may not read it): `GET /tiles`
 * names it then (read by findLayers first). */
async function findTerrain() {
  return terrainUrl ? getJsonAt(terrainUrl) : null;
}

/** The initial view: the buildings' extent when published (the city core), else every layer's. */
function initialBounds(layers) {
  const buildings = layers.find((l) => l.key === 'buildings');
  const chosen = buildings && isUsefulBounds(buildings.tilejson.bounds) ? [buildings] : layers;
  const boxes = chosen.map((l) => l.tilejson.bounds).filter(isUsefulBounds);
  if (!boxes.length) return null;
  return [
    [Math.min(...boxes.map((b) => b[0])), Math.min(...boxes.map((b) => b[1]))],
    [Math.max(...boxes.map((b) => b[2])), Math.max(...boxes.map((b) => b[3]))],
  ];
}

const ZONE_CLASSES = 7;

/** Numeric values of `field` among the loaded features of a layer (a feature cut by tiles counted once). */
function loadedValues(map, layer, field) {
  const byId = new Map();
  map.querySourceFeatures(layer.key, { sourceLayer: sourceLayerOf(layer) }).forEach((f, i) => {
    byId.set(f.id ?? `i${i}`, Number(f.properties[field]));
  });
  return [...byId.values()].filter(Number.isFinite);
}

/** Numeric zone attributes: from the TileJSON field list, else from the loaded features. */
function numericZoneFields(map, layer) {
  const declared = (layer.tilejson.vector_layers || [])[0]?.fields || {};
  let names = Object.entries(declared)
    .filter(([, type]) => /number|int|double|float|real|decimal/i.test(String(type)))
    .map(([name]) => name);
  if (!names.length) {
    const seen = new Set();
    for (const f of map.querySourceFeatures(layer.key, { sourceLayer: sourceLayerOf(layer) })) {
      for (const [name, value] of Object.entries(f.properties)) if (typeof value === 'number') seen.add(name);
    }
    names = [...seen];
  }
  return names.filter((n) => !ZONE_ID_FIELDS.has(n)).sort();
}

/** The legend of a classed layer: one swatch per class with its range. */
function classLegend(colours, breaks, min, max) {
  const edges = [min, ...breaks, max];
  return el(
    'ul',
    { className: 'legend-classes' },
    colours.map((colour, i) =>
      el('li', {}, [
        el('span', { className: 'swatch', style: `--swatch:${colour}`, 'aria-hidden': 'true' }),
        ` ${i === colours.length - 1 ? `${formatNumber(edges[i])} – ${formatNumber(edges[i + 1])}` : t('map.toUnder', { low: formatNumber(edges[i]), high: formatNumber(edges[i + 1]) })}`,
      ]),
    ),
  );
}

/** The legend of a sequential layer: a gradient bar between its two end values. */
function gradientLegend(colours, min, max, unit, maxPrefix = '') {
  return el('div', { className: 'legend-ramp' }, [
    el('span', { className: 'ramp', style: `background:${cssGradient(colours)}`, 'aria-hidden': 'true' }),
    el('span', { className: 'ramp-labels' }, [
      el('span', {}, `${formatNumber(min)}${unit}`),
      el('span', {}, `${maxPrefix}${formatNumber(max)}${unit}`),
    ]),
  ]);
}

function swatch(kind, colour) {
  return el('span', { className: `swatch swatch-${kind}`, style: `--swatch:${colour}`, 'aria-hidden': 'true' });
}

const SWATCHES = {
  zones: () => swatch('area', VIRIDIS[4]),
  green: () => swatch('area', OKABE_ITO.bluishGreen),
  roads: () => swatch('line', '#4d4d4d'),
  buildings: () => swatch('area', GREYS[2]),
  stops: () => swatch('point', OKABE_ITO.blue),
};

/** Render the attribute table of one feature into the inspector panel. */
export function showFeature(panel, title, properties) {
  const rows = Object.entries(properties)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) =>
      el('tr', { dataset: { field: k } }, [el('th', { scope: 'row' }, humanise(k)), el('td', {}, formatValue(k, v))]),
    );
  panel.replaceChildren(
    el('h2', { id: 'inspector-title' }, title),
    rows.length
      ? el('table', { className: 'attributes', 'aria-labelledby': 'inspector-title' }, [el('tbody', {}, rows)])
      : el('p', {}, t('map.noAttributes')),
  );
}

class MapPage {
  constructor(root) {
    this.root = root;
    this.layers = [];
    this.terrain = null;
    this.map = null;
  }

  async start() {
    const status = this.root.querySelector('#map-status');
    setStatus(status, t('map.loading'));
    let found;
    let terrain;
    try {
      found = await findLayers();
      terrain = await findTerrain();
    } catch (error) {
      const advice = error.status === 401 ? t('shell.forgetAdvice') : '';
      setStatus(status, `${t('map.loadFailed', { error: error.message })}${advice}`, true);
      document.body.dataset.mapState = 'error';
      return;
    }
    this.layers = found;
    this.terrain = terrain;
    this.hasLod2 = Boolean(lod2Url) && found.some((l) => l.key === 'buildings');
    window.civictwin.layers = found.map((l) => ({ key: l.key, table: l.table }));
    window.civictwin.terrain = terrain ? { name: terrain.name, maxzoom: terrain.maxzoom } : null;
    if (!found.length) {
      setStatus(status, t('map.noLayers'), true);
      document.body.dataset.mapState = 'empty';
      return;
    }
    this.createMap(found);
    this.buildSwitcher(found);
  }

  createMap(layers) {
    const started = performance.now();
    const bounds = initialBounds(layers);
    const map = new maplibregl.Map({
      container: this.root.querySelector('#map'),
      style: buildStyle(layers, this.terrain),
      bounds: bounds || undefined,
      center: bounds ? undefined : [0, 0],
      zoom: bounds ? undefined : 1,
      fitBoundsOptions: { padding: 20 },
      pitch: 45,
      bearing: -15,
      maxPitch: 70,
      attributionControl: { compact: true },
      transformRequest,
      canvasContextAttributes: { preserveDrawingBuffer: true },
    });
    this.map = map;
    window.civictwin.map = map;
    map.addControl(new maplibregl.NavigationControl({ visualizePitch: true }), 'top-right');
    map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-left');
    if (this.terrain) map.addControl(new maplibregl.TerrainControl({ source: TERRAIN_SOURCE, exaggeration: 1 }), 'top-right');
    map.on('click', (e) => this.inspect(e.point));
    const inspectable = layers.map((l) => STYLE_LAYERS[l.key][0]);
    for (const id of inspectable) {
      map.on('mouseenter', id, () => { map.getCanvas().style.cursor = 'pointer'; });
      map.on('mouseleave', id, () => { map.getCanvas().style.cursor = ''; });
    }
    map.on('error', (e) => console.warn('map error', e.error?.message || e));
    map.once('load', () => this.whenFullyLoaded(started));
  }

  /**
   * Draw the buildings the city model gives in LoD2 or finer in place of their LoD1 extrusions
   * (flattened to their footprint, which stays clickable), for the map's view grown by half on every
   * side, and again whenever the view leaves that box (lod2View.js); `window.civictwin.lod2` then says
   * what is drawn. Fetched after the first full render, so that render never shares the network, the
   * server or the main thread with the LoD2 surfaces.
   */
  async addLod2() {
    this.lod2Fetches = 0;
    this.map.on('moveend', () => {
      const view = boxOf(this.map.getBounds());
      if (needsFetch(this.lod2Fetched, view)) this.showLod2(view);
    });
    await this.showLod2(boxOf(this.map.getBounds()));
  }

  /** Fetch the LoD2 buildings around a view and swap them in; an answer overtaken by a later view is dropped. */
  async showLod2(view) {
    const box = grownBox(view);
    const ticket = (this.lod2Ticket = (this.lod2Ticket || 0) + 1);
    let payload;
    try {
      payload = await getJsonAt(withBox(lod2Url, box));
    } catch (error) {
      if (ticket !== this.lod2Ticket) return;
      console.warn('LoD2 buildings not loaded', error.message);
      window.civictwin.lod2 = { error: error.message };
      document.body.dataset.lod2State = 'error';
      return;
    }
    if (ticket !== this.lod2Ticket) return;
    this.lod2Fetches += 1;
    document.body.dataset.lod2Fetches = String(this.lod2Fetches);
    this.lod2Fetched = { box, truncated: Boolean(payload.truncated) };
    const state = { truncated: Boolean(payload.truncated), fetches: this.lod2Fetches, box };
    const layer = new Lod2Layer(payload, { id: LOD2_LAYER });
    const map = this.map;
    if (this.lod2) map.removeLayer(LOD2_LAYER);
    this.lod2 = null;
    if (!layer.mesh.triangles) {
      map.setPaintProperty('buildings-3d', 'fill-extrusion-height', heightExpression());
      window.civictwin.lod2 = { ...layer.summary(), ...state };
      document.body.dataset.lod2State = 'empty';
      return;
    }
    map.addLayer(layer, 'selection-line');
    map.setPaintProperty('buildings-3d', 'fill-extrusion-height', heightWithoutLod2(heightExpression(), layer.mesh.ids));
    const checkbox = this.root.querySelector('#toggle-buildings');
    if (checkbox && !checkbox.checked) map.setLayoutProperty(LOD2_LAYER, 'visibility', 'none');
    this.lod2 = layer;
    const legend = this.root.querySelector('#legend-buildings');
    if (legend && !legend.querySelector('.legend-lod2')) {
      legend.append(el('div', { className: 'legend-lod2' }, [swatch('area', ROOF_COLOUR), ` ${t('map.lod2Roofs')}`]));
    }
    map.once('idle', () => {
      if (this.lod2 !== layer) return;
      const { ids, ...drawn } = layer.summary();
      window.civictwin.lod2 = { ...drawn, ...state, drawnIds: ids.length, drawnAtMs: performance.now() };
      document.body.dataset.lod2State = 'drawn';
    });
    map.triggerRepaint();
  }

  /** After the first render with every tile loaded: fill the zone dropdown and height legend, mark ready. */
  whenFullyLoaded(started) {
    const map = this.map;
    const done = () => {
      if (!map.areTilesLoaded()) {
        map.once('idle', done);
        return;
      }
      this.setupZones();
      this.updateHeightLegend();
      window.civictwin.firstRenderMs = performance.now() - started;
      window.civictwin.readyAtMs = performance.now();
      window.civictwin.ready = true;
      document.body.dataset.mapState = 'ready';
      if (this.hasLod2) this.addLod2();
      setStatus(this.root.querySelector('#map-status'), t('map.showing', { layers: this.layers.map((l) => l.label).join(', ') }));
    };
    map.once('idle', done);
  }

  buildSwitcher(layers) {
    const list = this.root.querySelector('#layer-list');
    list.replaceChildren(
      ...layers.map((layer) => {
        const id = `toggle-${layer.key}`;
        const checkbox = el('input', { type: 'checkbox', id, checked: true, dataset: { layer: layer.key } });
        checkbox.addEventListener('change', () => this.setVisible(layer.key, checkbox.checked));
        return el('li', {}, [
          el('div', { className: 'layer-row' }, [checkbox, el('label', { htmlFor: id }, [SWATCHES[layer.key](), ` ${layer.label}`])]),
          el('div', { className: 'layer-legend', id: `legend-${layer.key}` }),
        ]);
      }),
    );
  }

  setVisible(key, visible) {
    const ids = key === 'buildings' && this.lod2 ? [...STYLE_LAYERS[key], LOD2_LAYER] : STYLE_LAYERS[key];
    for (const id of ids) this.map.setLayoutProperty(id, 'visibility', visible ? 'visible' : 'none');
  }

  setupZones() {
    const layer = this.layers.find((l) => l.key === 'zones');
    const control = this.root.querySelector('#zone-control');
    if (!layer) {
      control.hidden = true;
      return;
    }
    const fields = numericZoneFields(this.map, layer);
    const select = this.root.querySelector('#zone-attribute');
    select.replaceChildren(...fields.map((f) => el('option', { value: f }, humanise(f))));
    control.hidden = fields.length === 0;
    if (!fields.length) return;
    select.value = fields.includes('population') ? 'population' : fields[0];
    select.onchange = () => this.colourZones(layer, select.value);
    this.colourZones(layer, select.value);
  }

  /** Colour zones by `field` in quantile classes of viridis (colour runs dark to light with the value). */
  colourZones(layer, field) {
    const values = loadedValues(this.map, layer, field);
    const min = values.length ? Math.min(...values) : 0;
    const max = values.length ? Math.max(...values) : 0;
    const breaks = quantileBreaks(values, ZONE_CLASSES);
    const colours = sample(VIRIDIS, breaks.length + 1);
    const input = ['to-number', ['get', field], min];
    this.map.setPaintProperty('zones-fill', 'fill-color', stepExpression(input, breaks, colours));
    const legend = this.root.querySelector('#legend-zones');
    legend.replaceChildren(el('span', { className: 'legend-caption' }, t('map.classes', { field: humanise(field) })), classLegend(colours, breaks, min, max));
  }

  updateHeightLegend() {
    const layer = this.layers.find((l) => l.key === 'buildings');
    if (!layer) return;
    const heights = loadedValues(this.map, layer, 'height_m').sort((a, b) => a - b);
    // The colour scale ends at the 95th percentile so a few towers do not wash out the rest.
    const p95 = heights.length ? heights[Math.floor(0.95 * (heights.length - 1))] : 40;
    const top = Math.max(10, Math.ceil(p95 / 5) * 5);
    this.map.setPaintProperty('buildings-3d', 'fill-extrusion-color', rampExpression(heightExpression(), 0, top, GREYS));
    const legend = this.root.querySelector('#legend-buildings');
    legend.replaceChildren(el('span', { className: 'legend-caption' }, t('map.height')), gradientLegend(GREYS, 0, top, ' m', '≥ '));
  }

  /** Show the topmost feature at a screen point in the inspector and outline it. */
  inspect(point) {
    const ids = this.layers.map((l) => STYLE_LAYERS[l.key][0]).filter((id) => this.map.getLayoutProperty(id, 'visibility') !== 'none');
    const features = this.map.queryRenderedFeatures(point, { layers: ids });
    const panel = this.root.querySelector('#inspector');
    const selection = this.map.getSource('selection');
    if (!features.length) {
      panel.replaceChildren(el('h2', {}, t('map.feature')), el('p', {}, t('map.nothingHere')));
      selection.setData({ type: 'FeatureCollection', features: [] });
      return null;
    }
    const feature = features[0];
    const layer = this.layers.find((l) => l.key === feature.source);
    showFeature(panel, layer ? layer.one : t('map.feature'), feature.properties);
    selection.setData({ type: 'Feature', properties: {}, geometry: outlineOf(feature.geometry) });
    return feature;
  }

  inspectCentre() {
    if (!this.map) return;
    const canvas = this.map.getCanvas();
    return this.inspect([canvas.clientWidth / 2, canvas.clientHeight / 2]);
  }
}

/** Polygons are outlined by their rings so the selection draws as a line on the ground. */
function outlineOf(geometry) {
  if (geometry.type === 'Polygon') return { type: 'MultiLineString', coordinates: geometry.coordinates };
  if (geometry.type === 'MultiPolygon') return { type: 'MultiLineString', coordinates: geometry.coordinates.flat() };
  return geometry;
}

/** Start the map page inside `root` (the #page-map section). */
export async function startMapPage(root) {
  const page = new MapPage(root);
  root.querySelector('#inspect-centre').addEventListener('click', () => page.inspectCentre());
  window.civictwin.mapPage = page;
  await page.start();
  return page;
}
