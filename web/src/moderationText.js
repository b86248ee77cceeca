// What the viewer's moderation page says and sends (docs/consultation.md#comments-and-votes): every
// user-visible string of moderation.js, and pure functions, tested with `npm test`.

import { addMessages, formatDate, formatIntl, t } from './i18n.js';

/** The moderation page's messages by language (moderators read them: the same terms as contributeText.js). */
export const MESSAGES = {
  en: {
    'moderation.heading': 'Moderate a consultation',
    'moderation.intro': 'Comments, votes and survey observations wait here until a moderator approves or rejects them with a reason. Only approved ones are ever public. The reason is recorded and shown to moderators only.',
    'moderation.consultation': 'Consultation',
    'moderation.show': 'Show',
    'moderation.kind': 'Kind',
    'moderation.status.pending': 'Waiting for a decision',
    'moderation.status.approved': 'Approved',
    'moderation.status.rejected': 'Rejected',
    'moderation.kind.all': 'Everything',
    'moderation.kind.comment': 'Comments and votes',
    'moderation.kind.observation': 'Survey observations',
    'moderation.tokenLabel': 'Moderator token',
    'moderation.tokenUse': 'Log in',
    'moderation.tokenHint': 'Paste the moderator token the city gave you (kept in this browser tab only).',
    'moderation.noComparisons': 'No published comparisons: there is nothing to moderate.',
    'moderation.loading': 'Loading the queue…',
    'moderation.empty': 'Nothing here.',
    'moderation.needToken': 'Log in with a moderator token to see the queue.',
    'moderation.reason': 'Reason (recorded, shown to moderators only)',
    'moderation.needReason': 'Give a reason first.',
    'moderation.approve': 'Approve',
    'moderation.reject': 'Reject',
    'moderation.approvedBecause': 'Approved: {reason}',
    'moderation.rejectedBecause': 'Rejected: {reason}',
    'moderation.previous': 'Previous page',
    'moderation.next': 'Next page',
    'moderation.photoAlt': 'Photo sent with observation {id}',
    'moderation.photoFailed': 'The photo could not be loaded.',
    'moderation.open': 'Open for contributions; moderation possible until {date}.',
    'moderation.closed': 'Closed for contributions; moderation possible until {date}.',
    'moderation.observation': 'observation: {theme}',
    'moderation.comment': 'comment on {scenario} ({theme})',
    'moderation.voteFor': 'comment on {scenario} ({theme}), for',
    'moderation.voteAgainst': 'comment on {scenario} ({theme}), against',
    'moderation.place': 'at {lat}, {lon} (lat, lon)',
    'moderation.items': { one: '{total} item', other: '{total} items' },
    'moderation.page': 'Items {first}–{last} of {total}',
  },
  sk: {
    'moderation.heading': 'Moderovať konzultáciu',
    'moderation.intro': 'Komentáre, hlasy a pozorovania z prieskumu tu čakajú, kým ich moderátor s uvedením dôvodu neschváli alebo nezamietne. Zverejnené sú vždy len schválené. Dôvod sa zaznamená a vidia ho len moderátori.',
    'moderation.consultation': 'Konzultácia',
    'moderation.show': 'Zobraziť',
    'moderation.kind': 'Druh',
    'moderation.status.pending': 'Čakajúce na rozhodnutie',
    'moderation.status.approved': 'Schválené',
    'moderation.status.rejected': 'Zamietnuté',
    'moderation.kind.all': 'Všetko',
    'moderation.kind.comment': 'Komentáre a hlasy',
    'moderation.kind.observation': 'Pozorovania z prieskumu',
    'moderation.tokenLabel': 'Token moderátora',
    'moderation.tokenUse': 'Prihlásiť sa',
    'moderation.tokenHint': 'Vložte token moderátora, ktorý vám dalo mesto (uchová sa len v tejto karte prehliadača).',
    'moderation.noComparisons': 'Žiadne zverejnené porovnania: nie je čo moderovať.',
    'moderation.loading': 'Načítava sa front…',
    'moderation.empty': 'Nič tu nie je.',
    'moderation.needToken': 'Ak chcete vidieť front, prihláste sa tokenom moderátora.',
    'moderation.reason': 'Dôvod (zaznamená sa, vidia ho len moderátori)',
    'moderation.needReason': 'Najprv uveďte dôvod.',
    'moderation.approve': 'Schváliť',
    'moderation.reject': 'Zamietnuť',
    'moderation.approvedBecause': 'Schválené: {reason}',
    'moderation.rejectedBecause': 'Zamietnuté: {reason}',
    'moderation.previous': 'Predchádzajúca strana',
    'moderation.next': 'Ďalšia strana',
    'moderation.photoAlt': 'Fotografia odoslaná s pozorovaním {id}',
    'moderation.photoFailed': 'Fotografiu sa nepodarilo načítať.',
    'moderation.open': 'Otvorené pre príspevky; moderovať možno do {date}.',
    'moderation.closed': 'Uzavreté pre príspevky; moderovať možno do {date}.',
    'moderation.observation': 'pozorovanie: {theme}',
    'moderation.comment': 'komentár k scenáru {scenario} ({theme})',
    'moderation.voteFor': 'komentár k scenáru {scenario} ({theme}), za',
    'moderation.voteAgainst': 'komentár k scenáru {scenario} ({theme}), proti',
    'moderation.place': 'poloha {lat}; {lon} (zem. šírka; zem. dĺžka)',
    'moderation.items': { one: '{total} položka', few: '{total} položky', many: '{total} položky', other: '{total} položiek' },
    'moderation.page': 'Položky {first}–{last} z {total}',
  },
  it: {
    'moderation.heading': 'Modera una consultazione',
    'moderation.intro': 'Commenti, voti e osservazioni del sondaggio restano qui finché un moderatore non li approva o li rifiuta indicando un motivo. Solo quelli approvati diventano pubblici. Il motivo viene registrato ed è visibile solo ai moderatori.',
    'moderation.consultation': 'Consultazione',
    'moderation.show': 'Mostra',
    'moderation.kind': 'Tipo',
    'moderation.status.pending': 'In attesa di decisione',
    'moderation.status.approved': 'Approvati',
    'moderation.status.rejected': 'Rifiutati',
    'moderation.kind.all': 'Tutto',
    'moderation.kind.comment': 'Commenti e voti',
    'moderation.kind.observation': 'Osservazioni del sondaggio',
    'moderation.tokenLabel': 'Token del moderatore',
    'moderation.tokenUse': 'Accedi',
    'moderation.tokenHint': 'Incolla il token del moderatore che ti ha dato il Comune (conservato solo in questa scheda del browser).',
    'moderation.noComparisons': 'Nessun confronto pubblicato: non c’è nulla da moderare.',
    'moderation.loading': 'Caricamento della coda…',
    'moderation.empty': 'Qui non c’è nulla.',
    'moderation.needToken': 'Accedi con un token del moderatore per vedere la coda.',
    'moderation.reason': 'Motivo (registrato, visibile solo ai moderatori)',
    'moderation.needReason': 'Indica prima un motivo.',
    'moderation.approve': 'Approva',
    'moderation.reject': 'Rifiuta',
    'moderation.approvedBecause': 'Approvato: {reason}',
    'moderation.rejectedBecause': 'Rifiutato: {reason}',
    'moderation.previous': 'Pagina precedente',
    'moderation.next': 'Pagina successiva',
    'moderation.photoAlt': 'Foto inviata con l’osservazione {id}',
    'moderation.photoFailed': 'Non è stato possibile caricare la foto.',
    'moderation.open': 'Aperta ai contributi; moderazione possibile fino al {date}.',
    'moderation.closed': 'Chiusa ai contributi; moderazione possibile fino al {date}.',
    'moderation.observation': 'osservazione: {theme}',
    'moderation.comment': 'commento su {scenario} ({theme})',
    'moderation.voteFor': 'commento su {scenario} ({theme}), a favore',
    'moderation.voteAgainst': 'commento su {scenario} ({theme}), contro',
    'moderation.place': 'in {lat}; {lon} (lat.; long.)',
    'moderation.items': { one: '{total} elemento', many: '{total} di elementi', other: '{total} elementi' },
    'moderation.page': 'Elementi {first}–{last} di {total}',
  },
};
addMessages(MESSAGES);

/** The queue's filters as [value, message key] (the keys are looked up when the page is drawn). */
export const STATUSES = [['pending', 'moderation.status.pending'], ['approved', 'moderation.status.approved'], ['rejected', 'moderation.status.rejected']];
export const KINDS = [['', 'moderation.kind.all'], ['comment', 'moderation.kind.comment'], ['observation', 'moderation.kind.observation']];

/** A decision as a line: "Approved: on topic". */
export function decidedLine(status, reason) {
  return t(status === 'approved' ? 'moderation.approvedBecause' : 'moderation.rejectedBecause', { reason });
}

/** Whether moderation is still possible, and until which day: "Open for contributions; moderation possible until 7 January 2027." */
export function phaseLine(open, until) {
  return t(open ? 'moderation.open' : 'moderation.closed', { date: formatDate(until) });
}

export const PAGE_SIZE = 20;

/** The query of one page of the queue: status, kind (left out for everything), limit and offset. */
export function queueQuery({ status, kind, offset = 0, limit = PAGE_SIZE }) {
  const params = new URLSearchParams({ status });
  if (kind) params.set('kind', kind);
  params.set('limit', String(limit));
  params.set('offset', String(offset));
  return params.toString();
}

/**
 * The heading of one item: "#12 · Resident K7Q2XM · comment on zone30 (safety), for · 10 December 2026"
 * or "#13 · Resident B2C3D4 · observation: pothole · 10 December 2026".
 */
export function itemHeading(c) {
  const params = { scenario: c.scenario, theme: c.theme };
  const key = c.kind === 'observation' ? 'moderation.observation'
    : { for: 'moderation.voteFor', against: 'moderation.voteAgainst' }[c.vote] || 'moderation.comment';
  return `#${c.id} · ${c.pseudonym} · ${t(key, params)} · ${formatDate(c.created || c.date)}`;
}

/** Where an item is, when it has a place: "at 60.17120, 24.94120 (lat, lon)" (5 decimals: about 1 m). */
export function itemPlace(c) {
  if (c.lon == null || c.lat == null) return '';
  const degrees = (value) => formatIntl(value, { minimumFractionDigits: 5, maximumFractionDigits: 5 });
  return t('moderation.place', { lat: degrees(c.lat), lon: degrees(c.lon) });
}

/** "Items 21–40 of 45" (or "0 items"), the numbers in the language's format ("Položky 21–40 z 1 045"). */
export function pageLine({ total, offset, count }) {
  if (!total || !count) return t('moderation.items', { count: total || 0, total: formatIntl(total || 0) });
  return t('moderation.page', { first: formatIntl(offset + 1), last: formatIntl(offset + count), total: formatIntl(total) });
}

/** The link of `rel` (next, prev) in an answer's links, or null. */
export function linkOf(links, rel) {
  return (links || []).find((link) => link.rel === rel)?.href || null;
}

/** The decision's JSON body, or null when no reason was given (the server needs one). */
export function decisionBody(decision, reason) {
  const trimmed = (reason || '').trim();
  return trimmed ? { decision, reason: trimmed } : null;
}
