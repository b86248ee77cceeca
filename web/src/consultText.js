// What the consultation page's script says and how it colours: pure functions, tested with `npm test`.

import { PUOR } from './palettes.js';

/** Lines of the near-me answer, one per mapped table: "<label>: <sentence>". */
export function nearItems(answer) {
  if (!answer.tables.length) return ['Nothing of this comparison can be placed on the map.'];
  return answer.tables.map((t) => `${t.label}: ${t.sentence}`);
}

/** The query string of a near-me request (and of the page's shareable URL): plan first. */
export function nearQuery(plan, params) {
  const query = new URLSearchParams({ plan });
  for (const [key, value] of Object.entries(params)) query.set(key, String(value));
  return query.toString();
}

/** MapLibre colour of a change: orange more, purple less, grey within noise or unknown. */
export function changeColour(column) {
  const diff = ['to-number', ['get', `${column}_diff`], 0];
  return [
    'case',
    ['!=', ['get', `${column}_real`], true], '#9e9e9e',
    ['>', diff, 0], PUOR[6],
    ['<', diff, 0], PUOR[1],
    '#9e9e9e',
  ];
}
