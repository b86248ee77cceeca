// Dot-and-whisker charts drawn as plain SVG: one small chart per KPI, one row per scenario, the dot
// at the mean and the whisker spanning the 95% confidence interval. Scenarios differ by colour
// (Okabe–Ito blue and orange) and by marker shape, so the chart also reads without colour.

import { OKABE_ITO } from './palettes.js';
import { formatNumber, svg } from './ui.js';

const WIDTH = 320;
const ROW = 28;
const LEFT = 96;
const RIGHT = 16;
const AXIS = 26;

/** "Nice" tick values covering [min, max]: 3 to 6 round numbers. */
export function niceTicks(min, max) {
  if (!(max > min)) return [min];
  const rough = (max - min) / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough);
  const ticks = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function marker(kind, x, y, colour) {
  if (kind === 'square') return svg('rect', { x: x - 5, y: y - 5, width: 10, height: 10, fill: colour, stroke: '#000', 'stroke-width': 0.75 });
  return svg('circle', { cx: x, cy: y, r: 5.5, fill: colour, stroke: '#000', 'stroke-width': 0.75 });
}

const STYLES = [
  { colour: OKABE_ITO.blue, shape: 'circle' },
  { colour: OKABE_ITO.orange, shape: 'square' },
];

/**
 * One chart: `rows` are {label, mean, ci_low, ci_high}; `title` names the KPI with its unit.
 * Returns an <svg role="img"> whose accessible name states every value.
 */
export function intervalChart(title, rows) {
  const values = rows.flatMap((r) => [r.mean, r.ci_low, r.ci_high]).filter(Number.isFinite);
  const lo = values.length ? Math.min(...values) : 0;
  const hi = values.length ? Math.max(...values) : 1;
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
  const ticks = niceTicks(lo - pad, hi + pad);
  const min = Math.min(lo - pad, ticks[0]);
  const max = Math.max(hi + pad, ticks[ticks.length - 1]);
  const x = (v) => LEFT + ((v - min) / (max - min)) * (WIDTH - LEFT - RIGHT);
  const height = rows.length * ROW + AXIS + 8;
  const description = rows
    .map((r) => `${r.label}: ${formatNumber(r.mean)} (95% CI ${formatNumber(r.ci_low)} to ${formatNumber(r.ci_high)})`)
    .join('; ');
  const children = [svg('title', {}, `${title}. ${description}`)];
  ticks.forEach((t) => {
    children.push(svg('line', { x1: x(t), x2: x(t), y1: 4, y2: rows.length * ROW + 4, stroke: '#d0d0d0' }));
    children.push(svg('text', { x: x(t), y: rows.length * ROW + 20, 'text-anchor': 'middle', class: 'tick' }, formatNumber(t)));
  });
  rows.forEach((r, i) => {
    const y = i * ROW + ROW / 2 + 4;
    const style = STYLES[i % STYLES.length];
    children.push(svg('text', { x: LEFT - 8, y: y + 4, 'text-anchor': 'end', class: 'row-label' }, truncate(r.label, 14)));
    if (Number.isFinite(r.ci_low) && Number.isFinite(r.ci_high)) {
      children.push(svg('line', { x1: x(r.ci_low), x2: x(r.ci_high), y1: y, y2: y, stroke: '#222', 'stroke-width': 2 }));
      for (const end of [r.ci_low, r.ci_high]) {
        children.push(svg('line', { x1: x(end), x2: x(end), y1: y - 5, y2: y + 5, stroke: '#222', 'stroke-width': 2 }));
      }
    }
    if (Number.isFinite(r.mean)) children.push(marker(style.shape, x(r.mean), y, style.colour));
  });
  return svg('svg', { viewBox: `0 0 ${WIDTH} ${height}`, width: '100%', role: 'img', class: 'interval-chart' }, children);
}

function truncate(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}
