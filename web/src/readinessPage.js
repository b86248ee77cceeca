// The readiness page: pick a use case, see what the twin holds of the data it needs, what is missing
// and how to get it, and the maturity level (docs/readiness.md). Staff tokens only (the API says so).

import { ApiError, getJson } from './api.js';
import { kpiRows, levelLine, needRows, nextSteps } from './readiness.js';
import { el } from './ui.js';
import { t } from './viewerText.js';

function table(caption, columns, rows) {
  const head = el('tr', {}, columns.map(([, label]) => el('th', { scope: 'col' }, label)));
  const body = rows.map((row) => el('tr', { className: row.met === false ? 'unmet' : '' },
    columns.map(([key]) => el('td', {}, row[key]))));
  return el('div', { className: 'table-wrap', tabIndex: 0, role: 'group', 'aria-label': t('readiness.scroll', { caption }) },
    el('table', { className: 'kpi-table' }, [el('caption', {}, caption), el('thead', {}, head), el('tbody', {}, body)]));
}

function render(target, report) {
  const level = levelLine(report);
  const parts = [
    el('p', {}, [el('strong', {}, t('readiness.objective')), report.objective]),
    el('p', { className: 'readiness-level' }, el('strong', {}, level.line)),
  ];
  if (level.next) {
    parts.push(el('h3', {}, level.next));
    parts.push(el('ul', { className: 'summary' }, nextSteps(report).map((step) =>
      el('li', {}, [el('strong', {}, step.what), ` (${step.status}): ${step.how}`]))));
  }
  parts.push(el('h3', {}, t('readiness.kpis')));
  parts.push(table(t('readiness.kpiCaption'),
    [['kpi', t('readiness.kpi')], ['engine', t('readiness.engine')], ['ready', t('readiness.ready')], ['unmet', t('readiness.missing')]], kpiRows(report)));
  parts.push(el('h3', {}, t('readiness.data')));
  parts.push(table(t('readiness.dataCaption'),
    [['level', t('readiness.levelColumn')], ['what', t('readiness.what')], ['source', t('readiness.heldAs')], ['status', t('readiness.status')], ['held', t('readiness.held')],
      ['asOf', t('readiness.asOf')], ['notes', t('readiness.notes')]], needRows(report)));
  target.replaceChildren(...parts);
}

/** Start the page in `root`: fill the use-case picker, show the chosen use case's report. */
export async function startReadinessPage(root) {
  const picker = root.querySelector('#use-case');
  const status = root.querySelector('#readiness-status');
  const target = root.querySelector('#readiness-report');
  const explain = (error) => {
    status.textContent = error instanceof ApiError && [401, 403].includes(error.status) ? t('readiness.staffOnly') : t('readiness.loadFailed', { error: error.message });
  };
  let cases;
  try {
    cases = (await getJson('readiness')).use_cases;
  } catch (error) {
    explain(error);
    window.civictwin.readinessReady = true;
    return null;
  }
  picker.replaceChildren(...cases.map((c) => el('option', { value: c.name }, c.title)));
  const show = async () => {
    status.textContent = t('readiness.loading');
    try {
      render(target, await getJson(`readiness/${encodeURIComponent(picker.value)}`));
      status.textContent = '';
    } catch (error) {
      explain(error);
    }
    window.civictwin.readinessReady = true;
  };
  picker.addEventListener('change', show);
  await show();
  return null;
}
