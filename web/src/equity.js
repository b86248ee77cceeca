// The equity view of a comparison (GET /comparisons/{id}/equity): each zone value's change per income
// or age group of zones, with its 95% interval over the seeds. Pure functions for the scenario page,
// which renders them; the view's method is in docs/methods-sociodemographics.md.

import { el, formatNumber, formatSigned, humanise } from './ui.js';
import { t } from './viewerText.js';

/** The rows of one plan, grouped by grouping in the order written: [{ grouping, rows }]. */
export function equityGroups(view, plan) {
  const groups = new Map();
  for (const row of view.rows || []) {
    if (row.plan !== plan) continue;
    if (!groups.has(row.grouping)) groups.set(row.grouping, []);
    groups.get(row.grouping).push(row);
  }
  return [...groups].map(([grouping, rows]) => ({ grouping, rows }));
}

/** One table row as text: value (unit), group, zones, residents, baseline, plan, change (interval). */
export function equityCells(row) {
  const interval = Number.isFinite(row.ci_low) && Number.isFinite(row.ci_high)
    ? t('equity.to', { low: formatSigned(row.ci_low), high: formatSigned(row.ci_high) })
    : t('equity.noInterval');
  return [
    `${humanise(row.value)} (${row.unit})`,
    row.group,
    String(row.zones),
    formatNumber(row.residents),
    formatNumber(row.base_mean),
    formatNumber(row.plan_mean),
    `${formatSigned(row.diff)} (${interval})${row.distinguishable ? '' : t('equity.withinNoise')}`,
  ];
}

/** The sentence saying which KPIs have no breakdown, or null when none are listed. */
export function notBrokenDownLine(view) {
  const names = Object.keys(view.not_broken_down || {});
  if (!names.length) return null;
  return t('equity.notBrokenDown', { names: names.map(humanise).join(', ') });
}

const HEAD = ['value', 'group', 'zones', 'residents', 'baseline', 'plan', 'change'];

/** The view's tables for ``plan`` as DOM nodes: one captioned table per grouping, and the note. */
export function equityElements(view, plan) {
  const tables = equityGroups(view, plan).map(({ grouping, rows }) => el('div', { className: 'table-wrap', tabindex: '0', role: 'group', 'aria-label': t('equity.scroll', { grouping }) }, [
    el('table', { className: 'kpi-table' }, [
      el('caption', {}, t('equity.caption', { plan, grouping })),
      el('thead', {}, el('tr', {}, HEAD.map((h) => el('th', { scope: 'col' }, t(`equity.${h}`))))),
      el('tbody', {}, rows.map((row) => el('tr', { className: row.distinguishable ? 'real' : '' }, equityCells(row).map((text) => el('td', {}, text))))),
    ]),
  ]));
  const line = notBrokenDownLine(view);
  return [...tables, ...(line ? [el('p', { className: 'hint' }, line)] : [])];
}
