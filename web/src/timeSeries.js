// A sensor's time series as plain SVG: the observations as a line with dots, its rules' limits as
// dashed lines, and its alerts as shaded bands from opening to closing. Times are shown in UTC.
// The <svg role="img"> carries a full description (values, limits, alerts) for screen readers.

import { niceTicks } from './chart.js';
import { formatNumber, svg } from './ui.js';
import { t } from './viewerText.js';

const WIDTH = 640;
const HEIGHT = 260;
const LEFT = 56;
const RIGHT = 12;
const TOP = 12;
const BOTTOM = 34;
const HOUR = 3_600_000;
const STEPS_H = [1, 2, 3, 6, 12, 24, 48, 72, 168];

/** "2026-03-01 10:00 UTC" (or only the clock time with `clockOnly`). */
export function formatTime(ms, clockOnly = false) {
  const iso = new Date(ms).toISOString();
  return clockOnly ? iso.slice(11, 16) : `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/** Round-hour ticks covering [start, end]: 3 to 8 of them, at 1, 2, 3, 6, 12 h, 1, 2, 3 or 7 days apart. */
export function timeTicks(start, end) {
  if (!(end > start)) return [start];
  const span = (end - start) / HOUR;
  const step = (STEPS_H.find((h) => span / h <= 7) ?? Math.ceil(span / 7 / 24) * 24) * HOUR;
  const ticks = [];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) ticks.push(t);
  return ticks;
}

/** An SVG path through [ms, value] points; a null value breaks the line (a gap, not a zero). */
export function linePath(points, x, y) {
  let path = '';
  let pen = false;
  for (const [t, v] of points) {
    if (v === null || v === undefined || !Number.isFinite(v)) {
      pen = false;
      continue;
    }
    path += `${pen ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  }
  return path;
}

/** The value range to draw: the observations and every limit, padded, on round ticks. */
export function valueRange(points, limits) {
  const values = points.map((p) => p[1]).filter(Number.isFinite);
  for (const limit of limits) for (const v of [limit.above, limit.below]) if (Number.isFinite(v)) values.push(v);
  const lo = values.length ? Math.min(...values) : 0;
  const hi = values.length ? Math.max(...values) : 1;
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
  const bottom = lo >= 0 ? 0 : lo - pad; // non-negative data (counts, concentrations) are drawn from zero
  const ticks = niceTicks(bottom, hi + pad);
  return { min: Math.min(ticks[0], bottom), max: Math.max(ticks[ticks.length - 1], hi + pad), ticks };
}

/** One sentence per limit and alert, for the chart's accessible description and the page. */
export function describe(series) {
  const { datastream, observations, limits, alerts } = series;
  const unit = datastream.unit_symbol || datastream.unit;
  const valued = observations.filter((p) => Number.isFinite(p[1]));
  const parts = [t('series.in', { name: datastream.name, unit })];
  if (valued.length) {
    const last = valued[valued.length - 1];
    parts.push(t('series.observations', {
      count: valued.length,
      from: formatTime(valued[0][0]),
      to: formatTime(last[0]),
      lowest: formatNumber(Math.min(...valued.map((p) => p[1]))),
      highest: formatNumber(Math.max(...valued.map((p) => p[1]))),
      latest: formatNumber(last[1]),
    }));
  } else {
    parts.push(t('series.none'));
  }
  for (const limit of limits) parts.push(limitSentence(limit, unit));
  for (const alert of alerts) parts.push(alertSentence(alert));
  return parts.join(' ');
}

function limitSentence(limit, unit) {
  const side = Number.isFinite(limit.above) ? t('series.above', { value: formatNumber(limit.above) }) : t('series.below', { value: formatNumber(limit.below) });
  const severity = t(`series.severity.${['critical', 'info'].includes(limit.severity) ? limit.severity : 'warning'}`);
  const rule = { rule: limit.rule, severity, side, unit, what: limit.applies_to };
  return limit.applies_to === 'value' ? t('series.ruleValue', rule) : t('series.ruleOther', rule);
}

function alertSentence(alert) {
  const since = formatTime(Date.parse(alert.opened_at));
  return alert.status === 'open'
    ? t('series.alertOpen', { id: alert.id, rule: alert.rule, since })
    : t('series.alertClosed', { id: alert.id, rule: alert.rule, since, until: formatTime(Date.parse(alert.closed_at)) });
}

/** The chart of one sensor's series (as returned by GET /live/sensors/{id}). */
export function timeSeriesChart(series) {
  const { observations, limits, alerts } = series;
  const times = observations.map((p) => p[0]);
  const start = times.length ? times[0] : Date.now() - HOUR;
  const end = times.length > 1 ? times[times.length - 1] : start + HOUR;
  const range = valueRange(observations, limits);
  const x = (t) => LEFT + ((t - start) / (end - start)) * (WIDTH - LEFT - RIGHT);
  const y = (v) => TOP + (1 - (v - range.min) / (range.max - range.min)) * (HEIGHT - TOP - BOTTOM);
  const children = [svg('title', {}, describe(series))];
  for (const alert of alerts) children.push(alertBand(alert, start, end, x));
  for (const t of range.ticks) {
    children.push(svg('line', { x1: LEFT, x2: WIDTH - RIGHT, y1: y(t), y2: y(t), class: 'grid' }));
    children.push(svg('text', { x: LEFT - 6, y: y(t) + 4, 'text-anchor': 'end', class: 'tick' }, formatNumber(t)));
  }
  const ticks = timeTicks(start, end);
  const dayChange = ticks.length && new Date(ticks[0]).getUTCDate() !== new Date(ticks[ticks.length - 1]).getUTCDate();
  for (const t of ticks) {
    const label = dayChange && new Date(t).getUTCHours() === 0 ? formatTime(t).slice(5, 10) : formatTime(t, true);
    children.push(svg('line', { x1: x(t), x2: x(t), y1: HEIGHT - BOTTOM, y2: HEIGHT - BOTTOM + 4, class: 'axis' }));
    children.push(svg('text', { x: x(t), y: HEIGHT - BOTTOM + 16, 'text-anchor': 'middle', class: 'tick' }, label));
  }
  children.push(svg('line', { x1: LEFT, x2: WIDTH - RIGHT, y1: HEIGHT - BOTTOM, y2: HEIGHT - BOTTOM, class: 'axis' }));
  for (const limit of limits) {
    const value = Number.isFinite(limit.above) ? limit.above : limit.below;
    if (!Number.isFinite(value)) continue;
    children.push(svg('line', { x1: LEFT, x2: WIDTH - RIGHT, y1: y(value), y2: y(value), class: `limit limit-${limit.severity}` }));
    children.push(svg('text', { x: WIDTH - RIGHT - 4, y: y(value) - 4, 'text-anchor': 'end', class: 'limit-label' }, `${limit.rule} ${formatNumber(value)}`));
  }
  children.push(svg('path', { d: linePath(observations, x, y), class: 'series' }));
  if (observations.length <= 400) {
    for (const [t, v] of observations) if (Number.isFinite(v)) children.push(svg('circle', { cx: x(t), cy: y(v), r: 2.5, class: 'point' }));
  }
  children.push(svg('text', { x: 4, y: TOP + 4, class: 'unit' }, series.datastream.unit_symbol || series.datastream.unit));
  return svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: '100%', role: 'img', class: 'series-chart' }, children);
}

function alertBand(alert, start, end, x) {
  const from = Math.max(start, Date.parse(alert.opened_at));
  const to = alert.closed_at ? Math.min(end, Date.parse(alert.closed_at)) : end;
  const left = x(from);
  const width = Math.max(3, x(Math.max(to, from)) - left);
  return svg('rect', { x: left, y: TOP, width, height: HEIGHT - TOP - BOTTOM, class: `alert-band alert-${alert.status}` });
}
