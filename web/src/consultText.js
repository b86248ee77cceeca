// What the consultation page's script says and how it colours: pure functions, tested with `npm test`.

import { addMessages, t } from './i18n.js';
import { PUOR } from './palettes.js';

/** The consultation page script's messages by language (the page's words come from the server's catalogues). */
export const MESSAGES = {
  en: {
    'consult.nothingMapped': 'Nothing of this comparison can be placed on the map.',
    'consult.near': 'Near {place}',
    'consult.plan': ' (plan {plan}):',
    'consult.commentsFailed': 'Comments could not be loaded: {error}',
    'consult.mapFailed': 'The map could not be drawn: {error}. Everything else on this page still holds.',
  },
  sk: {
    'consult.nothingMapped': 'Nič z tohto porovnania sa nedá umiestniť na mapu.',
    'consult.near': 'V okolí: {place}',
    'consult.plan': ' (plán {plan}):',
    'consult.commentsFailed': 'Komentáre sa nepodarilo načítať: {error}',
    'consult.mapFailed': 'Mapu sa nepodarilo vykresliť: {error}. Všetko ostatné na tejto stránke platí.',
  },
  it: {
    'consult.nothingMapped': 'Nulla di questo confronto può essere collocato sulla mappa.',
    'consult.near': 'Nei pressi di: {place}',
    'consult.plan': ' (piano {plan}):',
    'consult.commentsFailed': 'Non è stato possibile caricare i commenti: {error}',
    'consult.mapFailed': 'Non è stato possibile disegnare la mappa: {error}. Tutto il resto di questa pagina resta valido.',
  },
};
addMessages(MESSAGES);

/** Lines of the near-me answer, one per mapped table: "<label>: <sentence>". */
export function nearItems(answer) {
  if (!answer.tables.length) return [t('consult.nothingMapped')];
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
