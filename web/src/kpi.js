// How comparisons are read for display: KPI names and units, and the difference between any two of
// a comparison's scenarios. Pure functions (no DOM, no map), tested with `npm test`.

import { humanise } from './ui.js';

/** Names for KPIs whose identifiers read badly when humanised (a `label` in the data wins). */
const KPI_NAMES = { vehicle_km: 'Vehicle-kilometres', person_trips: 'Person trips (all modes)', finished_share: 'Trips finished' };
const UNIT_SUFFIX = /_(s|h|kg|kmh|db|m)$/;

/** How a KPI is shown: its name with the unit once; shares as percentages. */
export function kpiDisplay(row) {
  const share = row.unit === 'share';
  const unit = share ? '%' : row.unit;
  let name = row.label || KPI_NAMES[row.kpi];
  if (!name) {
    const mode = /^share_(.+)$/.exec(row.kpi);
    name = mode ? `${humanise(mode[1])} share of trips` : humanise(row.kpi.replace(UNIT_SUFFIX, ''));
  }
  return { label: unit ? `${name} (${unit})` : name, scale: share ? 100 : 1, diffUnit: share ? ' pp' : '' };
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
  if (a === comparison.baseline && b !== a) return { plan: b, note: `${b} compared with ${a}` };
  if (b === comparison.baseline && a !== b) return { plan: a, note: `${a} compared with ${b}` };
  if (a !== b) return { plan: b, note: `${b} compared with the baseline ${comparison.baseline} (differences are measured against the baseline)` };
  return null;
}

