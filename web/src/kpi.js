// How comparisons are read for display: KPI names and units, the difference between any two of a
// comparison's scenarios, and which table values a map shows. Pure functions (no DOM, no map), tested
// with `npm test`. Nothing here knows an engine: KPIs and tables carry their own labels and units.

import { humanise } from './ui.js';
import { t } from './viewerText.js';

const UNIT_SUFFIX = /_(s|h|kg|kmh|db|m|mwh|kwh|t|pct)$/;

/** How a KPI is shown: its label (else its humanised name) with the unit once; shares as percentages. */
export function kpiDisplay(row) {
  const share = row.unit === 'share';
  const unit = share ? '%' : row.unit;
  const name = row.label ? engineLabel('kpi', row.label) : humanise(row.kpi.replace(UNIT_SUFFIX, ''));
  return { label: unit ? `${name} (${unit})` : name, scale: share ? 100 : 1, diffUnit: share ? t('kpi.pp') : '' };
}

/** An engine's label (in English) of a KPI (`kind` "kpi") or a table ("table") in the viewer's language, itself when not translated. */
export function engineLabel(kind, label) {
  const key = `${kind}.label.${label}`;
  const said = t(key);
  return said === key ? label : said;
}

/** The engines of a comparison in order, each with its KPI ids (the first row of each KPI). */
export function kpisByEngine(comparison) {
  const engines = new Map();
  for (const row of comparison.kpis) {
    const engine = row.engine || '';
    if (!engines.has(engine)) engines.set(engine, []);
    if (!engines.get(engine).some((r) => r.kpi === row.kpi)) engines.get(engine).push(row);
  }
  return [...engines.entries()].map(([engine, rows]) => ({ engine, rows }));
}

/** A table column for people with its unit once: ("heat_mwh", "MWh") → "Heat mwh (MWh)", ("speed_ms", "m/s") → "Speed (m/s)". */
export function columnLabel(column, unit) {
  const name = humanise(column);
  return /\)$/.test(name) || !unit ? name : `${name} (${unit})`;
}

/** The value columns of a table of the comparison, as `{column, unit}`; none for an unknown table. */
export function tableValues(comparison, tableId) {
  const table = (comparison.tables || []).find((t) => t.id === tableId);
  return table ? table.values : [];
}

/**
 * How a feature is coloured for a value column: `real` (a change beyond noise), `noise` (within noise),
 * or `none` (no value). Tables without a `<column>_real` flag colour every finite change.
 */
export function changeClass(properties, column) {
  const value = Number(properties[`${column}_diff`]);
  if (properties[`${column}_diff`] === null || !Number.isFinite(value)) return 'none';
  const real = properties[`${column}_real`];
  if (real === undefined) return 'real';
  return real === true ? 'real' : 'noise';
}

/**
 * The difference B − A for one KPI from the comparison's plan − baseline rows; null when A and B
 * are both plans (the comparison only holds differences against the baseline).
 */
export function differenceBetween(comparison, kpi, a, b) {
  const row = (plan) => comparison.differences.find((d) => d.kpi === kpi && d.plan === plan);
  if (a === comparison.baseline && b !== a) return row(b) ? { ...row(b), sign: 1 } : null;
  if (b === comparison.baseline && a !== b) {
    const d = row(a);
    if (!d) return null;
    return { ...d, mean: -d.mean, ci_low: -d.ci_high, ci_high: -d.ci_low, sign: -1 };
  }
  return null;
}

/** The plan whose edge differences are mapped, and how to read them, for a pair of scenarios. */
export function mappedPlan(comparison, a, b) {
  if (a === comparison.baseline && b !== a) return { plan: b, note: t('scenario.comparedWith', { plan: b, base: a }) };
  if (b === comparison.baseline && a !== b) return { plan: a, note: t('scenario.comparedWith', { plan: a, base: b }) };
  if (a !== b) return { plan: b, note: t('scenario.comparedWithBaseline', { plan: b, base: comparison.baseline }) };
  return null;
}

