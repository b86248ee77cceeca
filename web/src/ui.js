// Small DOM helpers shared by the pages: building elements, formatting numbers and field names.

import { intlLocale } from './i18n.js';

/**
 * Create an element. `props` are assigned as properties (className, htmlFor, checked, ...), except
 * `dataset` (merged into data-* attributes), `style`, and names with a dash (aria-*, role): attributes.
 * `children` is a string, a node, or an array of them.
 */
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'style' || key.includes('-') || key === 'role') node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of [].concat(children)) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Create an SVG element with attributes and children. */
export function svg(tag, attributes = {}, children = []) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  for (const child of [].concat(children)) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/** A number for people in the viewer's language ("1,234.5", "1 234,5", "1234,5"): 0–2 decimals depending on its size. */
export function formatNumber(value) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return '–';
  const v = Number(value);
  const abs = Math.abs(v);
  const digits = abs >= 100 || Number.isInteger(v) ? 0 : abs >= 10 ? 1 : 2;
  // A true minus sign (U+2212): clearer than a hyphen, and what screen readers read as "minus".
  return v.toLocaleString(intlLocale(), { maximumFractionDigits: digits, minimumFractionDigits: 0 }).replace('-', '−');
}

/** An attribute value for people: identifiers verbatim, other numbers formatted. */
export function formatValue(field, value) {
  if (typeof value !== 'number' || /(^|_)id$/i.test(field)) return String(value);
  return formatNumber(value);
}

/** A signed number: "+12", "−3.5" (true minus sign), "0". */
export function formatSigned(value) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return '–';
  const text = formatNumber(Math.abs(value));
  if (Number(value) > 0) return `+${text}`;
  if (Number(value) < 0) return `−${text}`;
  return text;
}

const UNITS = {
  m: ' (m)',
  m2: ' (m²)',
  ms: ' (m/s)',
  kmh: ' (km/h)',
  s: ' (s)',
  h: ' (h)',
  g: ' (g)',
  kg: ' (kg)',
  db: ' (dB)',
  vph: ' (veh/h)',
};

const ACRONYMS = { co2: 'CO2', nox: 'NOx', pmx: 'PMx', poi: 'POI', osm: 'OSM', id: 'ID', h3: 'H3', kpi: 'KPI' };

/** A field name for people: "height_m" → "Height (m)", "co2_kg" → "CO2 (kg)", "poi_shop" → "POI shop". */
export function humanise(name) {
  const parts = String(name).split('_');
  let unit = '';
  if (parts.length > 1 && UNITS[parts[parts.length - 1].toLowerCase()]) unit = UNITS[parts.pop().toLowerCase()];
  const words = parts.map((w) => ACRONYMS[w.toLowerCase()] || w).join(' ');
  return words.charAt(0).toUpperCase() + words.slice(1) + unit;
}

/** A humanised name inside a sentence: "Change in vehicles", "Change in CO2 (kg)". */
export function inSentence(name) {
  const text = humanise(name);
  return /^[A-Z0-9]{2}/.test(text) ? text : text.charAt(0).toLowerCase() + text.slice(1);
}

/** Show a message in a status line (role=status, so screen readers announce it). */
export function setStatus(node, message, isError = false) {
  node.textContent = message;
  node.classList.toggle('error', isError);
}
