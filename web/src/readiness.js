// What the readiness page shows, from the JSON of GET /readiness/{use_case} (pure: no DOM).

import { formatDate } from './i18n.js';
import { t } from './viewerText.js';

const levelName = (level) => t(`readiness.level.${level}`);

/** "Level 2 of 4: informative" and the level it is working towards, if any. */
export function levelLine(report) {
  const line = t('readiness.level', { level: report.maturity, name: levelName(report.maturity) });
  if (report.maturity >= 4) return { line, next: null };
  return { line, next: t('readiness.toReach', { level: report.maturity + 1, name: levelName(report.maturity + 1) }) };
}

/** The needs standing between the twin and the next level: what, why not, how to get it. */
export function nextSteps(report) {
  const byId = new Map(report.needs.map((need) => [need.id, need]));
  return report.next_level.map((id) => {
    const need = byId.get(id);
    return { what: need.what, status: need.status, how: need.how_to_get };
  });
}

/** Rows of the data table, ordered by level then id: every cell as text for people. */
export function needRows(report) {
  return [...report.needs]
    .sort((a, b) => a.level - b.level || a.id.localeCompare(b.id))
    .map((need) => ({
      level: `${need.level} (${levelName(need.level)})`,
      what: need.what,
      source: `${need.kind} ${need.target}`,
      status: need.status,
      held: [
        need.licence && t('readiness.licence', { value: need.licence }),
        need.access && t('readiness.access', { value: need.access }),
        need.steward && t('readiness.steward', { value: need.steward }),
        need.validation && t('readiness.validation', { value: need.validation }),
      ].filter(Boolean).join('; ') || '–',
      asOf: need.as_of ? `${formatDate(need.as_of)}${need.age_days === null ? '' : ` (${t('readiness.days', { count: need.age_days })})`}` : '–',
      notes: [...need.details, ...need.quality.map((q) => t('readiness.quality', { value: q }))].join('; ') || '–',
      met: need.met,
    }));
}

/** KPI rows: the label with the engine's name for it, ready or not, and what it still lacks. */
export function kpiRows(report) {
  return report.kpis.map((kpi) => ({
    kpi: `${kpi.label} (${kpi.name})`,
    engine: kpi.engine,
    ready: kpi.ready ? t('readiness.yes') : t('readiness.no'),
    unmet: kpi.unmet.join(', ') || '–',
  }));
}
