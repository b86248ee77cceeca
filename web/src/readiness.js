// What the readiness page shows, from the JSON of GET /readiness/{use_case} (pure: no DOM).

const LEVEL_NAMES = ['not ready', 'status', 'informative', 'predictive', 'optimisation'];

/** "Level 2 of 4: informative" and the level it is working towards, if any. */
export function levelLine(report) {
  const line = `Level ${report.maturity} of 4: ${report.maturity_name}`;
  if (report.maturity >= 4) return { line, next: null };
  return { line, next: `To reach level ${report.maturity + 1} (${LEVEL_NAMES[report.maturity + 1]})` };
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
      level: `${need.level} (${LEVEL_NAMES[need.level]})`,
      what: need.what,
      source: `${need.kind} ${need.target}`,
      status: need.status,
      held: [
        need.licence && `licence ${need.licence}`,
        need.access && `access ${need.access}`,
        need.steward && `steward ${need.steward}`,
        need.validation && `validation ${need.validation}`,
      ].filter(Boolean).join('; ') || '–',
      asOf: need.as_of ? `${need.as_of.slice(0, 10)}${need.age_days === null ? '' : ` (${need.age_days} days)`}` : '–',
      notes: [...need.details, ...need.quality.map((q) => `quality: ${q}`)].join('; ') || '–',
      met: need.met,
    }));
}

/** KPI rows: the label with the engine's name for it, ready or not, and what it still lacks. */
export function kpiRows(report) {
  return report.kpis.map((kpi) => ({
    kpi: `${kpi.label} (${kpi.name})`,
    engine: kpi.engine,
    ready: kpi.ready ? 'yes' : 'no',
    unmet: kpi.unmet.join(', ') || '–',
  }));
}
