// Live sensors and alerts on the map page: each sensor a circle coloured by its status (an open
// alert, its latest value beyond a rule's limit, within every limit, no data), a keyboard-usable
// list of the sensors, a chart of the chosen sensor with its limits and alerts, and an alerts panel.
// Everything refreshes every few seconds from GET /live/sensors and GET /alerts.

import './live.css';
import { getJson } from './api.js';
import { OKABE_ITO } from './palettes.js';
import { el, formatNumber, setStatus } from './ui.js';
import { describe, formatTime, timeSeriesChart } from './timeSeries.js';
import { t } from './viewerText.js';

const REFRESH_MS = 5000;

/** Status → colour (Okabe–Ito; its words are the catalogue's `live.status.<status>`); the shape of the map marker differs too (see STYLE). */
export const STATUS = {
  alert: { colour: OKABE_ITO.vermillion },
  beyond: { colour: OKABE_ITO.orange },
  ok: { colour: OKABE_ITO.bluishGreen },
  no_data: { colour: '#8c8c8c' },
};

/** The sensor layer: a circle per sensor, larger with a thick black ring when an alert is open. */
function sensorLayers() {
  const colour = ['match', ['get', 'status'], ...Object.entries(STATUS).flatMap(([k, v]) => [k, v.colour]), '#8c8c8c'];
  return [
    {
      id: 'sensors-circle',
      type: 'circle',
      source: 'sensors',
      paint: {
        'circle-color': colour,
        'circle-radius': ['match', ['get', 'status'], 'alert', 10, 'beyond', 8, 7],
        'circle-stroke-color': ['match', ['get', 'status'], 'alert', '#000000', '#ffffff'],
        'circle-stroke-width': ['match', ['get', 'status'], 'alert', 3, 2],
      },
    },
  ];
}

/** Words for a sensor's latest value: "250 µg/m³ at 2026-03-01 10:00 UTC". */
export function latestText(properties) {
  if (properties.latest_time === null || properties.latest_time === undefined) return t('live.noObservation');
  const unit = properties.unit_symbol || properties.unit;
  const value = properties.latest_result === null ? t('live.missingValue') : `${formatNumber(properties.latest_result)} ${unit}`;
  return t('live.valueAt', { value, time: formatTime(Date.parse(properties.latest_time)) });
}

class LivePanel {
  constructor(root, mapPage) {
    this.root = root;
    this.mapPage = mapPage;
    this.sensors = [];
    this.alerts = [];
    this.chartId = null;
    this.chartSignature = null;
    this.build();
  }

  /** The panel's sections, added to the map page's side panel. */
  build() {
    const panel = this.root.querySelector('.panel');
    this.sensorList = el('ul', { className: 'sensor-list', id: 'sensor-list' });
    this.alertList = el('ul', { className: 'alert-list', id: 'alert-list' });
    this.alertStatus = el('p', { className: 'status', id: 'alert-status', role: 'status' });
    this.chart = el('section', { className: 'sensor-chart', id: 'sensor-chart', hidden: true, 'aria-labelledby': 'sensor-chart-title' });
    const legend = el(
      'ul',
      { className: 'legend-classes sensor-legend' },
      Object.entries(STATUS).map(([key, s]) =>
        el('li', {}, [el('span', { className: `swatch swatch-point sensor-${key}`, style: `--swatch:${s.colour}`, 'aria-hidden': 'true' }), ` ${t(`live.status.${key}`)}`]),
      ),
    );
    this.section = el('section', { className: 'live', id: 'live-panel', 'aria-labelledby': 'live-heading' }, [
      el('h2', { id: 'live-heading' }, t('live.heading')),
      legend,
      this.sensorList,
      el('h2', { id: 'alerts-heading' }, t('live.alertsHeading')),
      this.alertStatus,
      this.alertList,
    ]);
    panel.prepend(this.chart);
    panel.append(this.section);
  }

  async refresh() {
    let sensors;
    let alerts;
    try {
      [sensors, alerts] = await Promise.all([getJson('live/sensors'), getJson('alerts?limit=50')]);
    } catch (error) {
      setStatus(this.alertStatus, t('live.loadFailed', { error: error.message }), true);
      return;
    }
    this.sensors = sensors.features;
    this.alerts = alerts.alerts;
    this.showOnMap(sensors);
    this.showSensors();
    this.showAlerts();
    window.civictwin.live = { ready: true, sensors: this.sensors.map((f) => f.properties), alerts: this.alerts, chart: window.civictwin.live?.chart ?? null };
    document.body.dataset.liveState = 'ready';
    if (this.chartId !== null) await this.openChart(this.chartId, { focus: false });
  }

  showOnMap(collection) {
    const map = this.mapPage?.map;
    if (!map) return;
    const add = () => {
      if (map.getSource('sensors')) {
        map.getSource('sensors').setData(collection);
        return;
      }
      map.addSource('sensors', { type: 'geojson', data: collection, promoteId: 'id' });
      for (const layer of sensorLayers()) map.addLayer(layer);
      map.on('click', 'sensors-circle', (event) => this.openChart(event.features[0].properties.id));
      map.on('mouseenter', 'sensors-circle', () => { map.getCanvas().style.cursor = 'pointer'; });
      map.on('mouseleave', 'sensors-circle', () => { map.getCanvas().style.cursor = ''; });
    };
    if (map.isStyleLoaded()) add();
    else map.once('load', add);
  }

  showSensors() {
    if (!this.sensors.length) {
      this.sensorList.replaceChildren(el('li', {}, t('live.noSensors')));
      return;
    }
    this.sensorList.replaceChildren(
      ...this.sensors.map(({ properties: p }) =>
        el('li', { dataset: { sensor: String(p.id), status: p.status } }, [
          el('span', { className: `swatch swatch-point sensor-${p.status}`, style: `--swatch:${STATUS[p.status].colour}`, 'aria-hidden': 'true' }),
          el('button', { type: 'button', className: 'link-button', onclick: () => this.openChart(p.id) }, p.name),
          el('span', { className: 'sensor-latest' }, ` ${latestText(p)} · ${t(`live.status.${p.status}`)}`),
        ]),
      ),
    );
  }

  showAlerts() {
    const open = this.alerts.filter((a) => a.status === 'open');
    setStatus(this.alertStatus, open.length ? t('live.openAlerts', { count: open.length }) : t('live.noOpenAlerts'));
    this.alertList.replaceChildren(
      ...this.alerts.map((alert) => {
        const sensor = alert.datastream;
        const when = alert.status === 'open'
          ? t('live.openSince', { time: formatTime(Date.parse(alert.opened_at)) })
          : t('live.fromTo', { from: formatTime(Date.parse(alert.opened_at)), to: formatTime(Date.parse(alert.closed_at)) });
        return el('li', { className: `alert-item alert-${alert.status} severity-${alert.severity}`, dataset: { alert: String(alert.id) } }, [
          el('strong', {}, `${t(`live.severity.${['critical', 'info'].includes(alert.severity) ? alert.severity : 'warning'}`)}: ${alert.rule}`),
          el('span', {}, t('live.on', { subject: sensor ? sensor.name : alert.subject, when })),
          el('span', { className: 'alert-message' }, alert.message),
          sensor ? el('button', { type: 'button', className: 'link-button', onclick: () => this.openChart(sensor.id) }, ` ${t('live.showChart')}`) : null,
        ]);
      }),
    );
  }

  /** Load and draw one sensor's chart; move the keyboard focus to it unless refreshing. */
  async openChart(id, { focus = true } = {}) {
    this.chartId = id;
    let series;
    try {
      series = await getJson(`live/sensors/${encodeURIComponent(id)}`);
    } catch (error) {
      if (!focus && !this.chart.hidden) return; // a failed refresh keeps the drawn chart; the next one retries
      this.chart.hidden = false;
      this.chart.replaceChildren(el('p', { className: 'status error' }, t('live.chartFailed', { error: error.message })));
      return;
    }
    // A refresh redraws only when the series changed: redrawing would drop the keyboard focus.
    const signature = JSON.stringify([id, series.observations.length, series.observations.at(-1), series.limits, series.alerts]);
    if (!focus && signature === this.chartSignature && !this.chart.hidden) return;
    this.chartSignature = signature;
    const title = el('h2', { id: 'sensor-chart-title', tabIndex: -1 }, series.datastream.name);
    const close = el('button', { type: 'button', className: 'close-chart', onclick: () => this.closeChart() }, t('live.closeChart'));
    this.chart.replaceChildren(
      el('div', { className: 'chart-head' }, [title, close]),
      timeSeriesChart(series),
      el('p', { className: 'chart-description' }, describe(series)),
    );
    this.chart.hidden = false;
    window.civictwin.live = { ...(window.civictwin.live || {}), chart: { id, points: series.observations.length, limits: series.limits.length, alerts: series.alerts.length } };
    if (focus) title.focus();
  }

  closeChart() {
    this.chartId = null;
    this.chartSignature = null;
    this.chart.hidden = true;
    window.civictwin.live = { ...(window.civictwin.live || {}), chart: null };
    const button = this.sensorList.querySelector('button');
    if (button) button.focus();
  }
}

/** Add the live sensors and alerts to the started map page; returns the page. */
export async function startLive(root, mapPage) {
  const live = new LivePanel(root, mapPage);
  await live.refresh();
  setInterval(() => live.refresh(), REFRESH_MS);
  return mapPage;
}
