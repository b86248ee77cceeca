// What the consultation page's "Have your say" section says and sends: pure functions, tested with
// `npm test`. Nothing here touches the page; contribute.js puts the results in it as text.

import { addMessages, formatDate, t } from './i18n.js';

/** The "Have your say" section's messages by language (the same words as the server's catalogues). */
export const MESSAGES = {
  en: {
    'say.counts': '{scenario}: {for} for, {against} against, {comments}',
    'say.comments': { one: '{count} comment', other: '{count} comments' },
    'say.heading': '{who} on {scenario} ({theme})',
    'say.for': 'for',
    'say.against': 'against',
    'say.openUntil': 'Open for comments and votes until {date}.',
    'say.opensOn': 'Comments and votes open on {date}.',
    'say.closed': 'This consultation closed on {date}; comments are no longer taken.',
    'say.title': 'Have your say',
    'say.votesSoFar': 'Votes so far (approved)',
    'say.approved': 'Comments (approved by a moderator)',
    'say.noComments': 'No approved comments yet.',
    'say.add': 'Add your comment or vote',
    'say.agree': 'I have read and agree to the text above',
    'say.scenario': 'Scenario',
    'say.theme': 'Theme',
    'say.vote': 'Your vote',
    'say.noVote': 'No vote, a comment only',
    'say.voteFor': 'For this scenario',
    'say.voteAgainst': 'Against this scenario',
    'say.text': 'Your comment (optional with a vote, at most 2000 characters)',
    'say.place': 'Attach the place I chose on the map or by address',
    'say.send': 'Send for moderation',
    'say.delete': 'Delete your contribution',
    'say.code': 'Your deletion code',
    'say.deleteIt': 'Delete it',
    'say.pasteCode': 'Paste the deletion code you were given.',
    'say.deleted': 'Your contribution was deleted.',
    'say.tickConsent': 'Please tick the consent box first.',
    'say.https': 'Contributions need this page to be opened over HTTPS.',
    'say.preparing': 'Preparing your contribution (a moment of your computer’s work protects this page from bots)…',
    'say.thanks': 'Thank you, {pseudonym}: your contribution is waiting for a moderator.',
    'say.yourCode': 'Your deletion code (keep it to delete your contribution; it is shown only now): {code}',
  },
  sk: {
    'say.counts': '{scenario}: {for} za, {against} proti, {comments}',
    'say.comments': { one: '{count} komentár', few: '{count} komentáre', many: '{count} komentára', other: '{count} komentárov' },
    'say.heading': '{who} k scenáru {scenario} ({theme})',
    'say.for': 'za',
    'say.against': 'proti',
    'say.openUntil': 'Komentáre a hlasovanie sú otvorené do {date}.',
    'say.opensOn': 'Komentáre a hlasovanie sa otvoria {date}.',
    'say.closed': 'Táto konzultácia sa skončila {date}; komentáre sa už neprijímajú.',
    'say.title': 'Vyjadrite sa',
    'say.votesSoFar': 'Doterajšie hlasy (schválené)',
    'say.approved': 'Komentáre (schválené moderátorom)',
    'say.noComments': 'Zatiaľ žiadne schválené komentáre.',
    'say.add': 'Pridajte komentár alebo hlas',
    'say.agree': 'Prečítal(a) som si text vyššie a súhlasím s ním',
    'say.scenario': 'Scenár',
    'say.theme': 'Téma',
    'say.vote': 'Váš hlas',
    'say.noVote': 'Bez hlasu, len komentár',
    'say.voteFor': 'Za tento scenár',
    'say.voteAgainst': 'Proti tomuto scenáru',
    'say.text': 'Váš komentár (pri hlase nepovinný, najviac 2000 znakov)',
    'say.place': 'Pripojiť miesto, ktoré som vybral(a) na mape alebo adresou',
    'say.send': 'Odoslať na moderovanie',
    'say.delete': 'Vymazať váš príspevok',
    'say.code': 'Váš kód na vymazanie',
    'say.deleteIt': 'Vymazať',
    'say.pasteCode': 'Vložte kód na vymazanie, ktorý ste dostali.',
    'say.deleted': 'Váš príspevok bol vymazaný.',
    'say.tickConsent': 'Najprv, prosím, zaškrtnite súhlas.',
    'say.https': 'Príspevky vyžadujú, aby bola táto stránka otvorená cez HTTPS.',
    'say.preparing': 'Pripravuje sa váš príspevok (chvíľa práce vášho počítača chráni túto stránku pred botmi)…',
    'say.thanks': 'Ďakujeme, {pseudonym}: váš príspevok čaká na moderátora.',
    'say.yourCode': 'Váš kód na vymazanie (uschovajte si ho, ak by ste chceli príspevok vymazať; zobrazí sa len teraz): {code}',
  },
  it: {
    'say.counts': '{scenario}: {for} a favore, {against} contro, {comments}',
    'say.comments': { one: '{count} commento', many: '{count} di commenti', other: '{count} commenti' },
    'say.heading': '{who} su {scenario} ({theme})',
    'say.for': 'a favore',
    'say.against': 'contro',
    'say.openUntil': 'Aperta a commenti e voti fino al {date}.',
    'say.opensOn': 'Commenti e voti si aprono il {date}.',
    'say.closed': 'Questa consultazione si è chiusa il {date}; non si accettano più commenti.',
    'say.title': "Di' la tua",
    'say.votesSoFar': 'Voti finora (approvati)',
    'say.approved': 'Commenti (approvati da un moderatore)',
    'say.noComments': 'Ancora nessun commento approvato.',
    'say.add': 'Aggiungi il tuo commento o voto',
    'say.agree': 'Ho letto il testo qui sopra e lo accetto',
    'say.scenario': 'Scenario',
    'say.theme': 'Tema',
    'say.vote': 'Il tuo voto',
    'say.noVote': 'Nessun voto, solo un commento',
    'say.voteFor': 'A favore di questo scenario',
    'say.voteAgainst': 'Contro questo scenario',
    'say.text': 'Il tuo commento (facoltativo con un voto, al massimo 2000 caratteri)',
    'say.place': 'Allega il luogo che ho scelto sulla mappa o con l’indirizzo',
    'say.send': 'Invia per la moderazione',
    'say.delete': 'Elimina il tuo contributo',
    'say.code': 'Il tuo codice di eliminazione',
    'say.deleteIt': 'Eliminalo',
    'say.pasteCode': 'Incolla il codice di eliminazione che hai ricevuto.',
    'say.deleted': 'Il tuo contributo è stato eliminato.',
    'say.tickConsent': 'Spunta prima la casella del consenso.',
    'say.https': 'Per i contributi questa pagina deve essere aperta tramite HTTPS.',
    'say.preparing': 'Preparazione del tuo contributo (un momento di lavoro del tuo computer protegge questa pagina dai bot)…',
    'say.thanks': 'Grazie, {pseudonym}: il tuo contributo è in attesa di un moderatore.',
    'say.yourCode': 'Il tuo codice di eliminazione (conservalo per eliminare il contributo; è mostrato solo ora): {code}',
  },
};
addMessages(MESSAGES);

/** Leading zero bits of a digest (an ArrayBuffer or Uint8Array). */
export function leadingZeroBits(digest) {
  const bytes = digest instanceof Uint8Array ? digest : new Uint8Array(digest);
  let bits = 0;
  for (const byte of bytes) {
    if (byte === 0) { bits += 8; continue; }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}

/**
 * A nonce for the server's proof-of-work challenge: SHA-256 of `challenge:nonce` must start with
 * `bits` zero bits (docs/consultation.md). `sha256` maps bytes to a digest (crypto.subtle in the
 * browser and in Node).
 */
export async function solveChallenge(challenge, bits, sha256) {
  const encoder = new TextEncoder();
  for (let nonce = 0; ; nonce += 1) {
    const digest = await sha256(encoder.encode(`${challenge}:${nonce}`));
    if (leadingZeroBits(digest) >= bits) return String(nonce);
  }
}

/** The JSON body of a contribution from the form's values (empty text and no vote left out). */
export function contributionBody({ consent, scenario, theme, vote, text, place }, proof) {
  const body = { consent: Boolean(consent), scenario, theme, challenge: proof.challenge, nonce: proof.nonce };
  const trimmed = (text || '').trim();
  if (trimmed) body.text = trimmed;
  if (vote === 'for' || vote === 'against') body.vote = vote;
  if (place) { body.lon = Number(place.lon.toFixed(6)); body.lat = Number(place.lat.toFixed(6)); }
  return body;
}

/** One line per scenario: "zone30: 2 for, 1 against, 2 comments". */
export function countLines(counts) {
  return Object.entries(counts).map(([scenario, c]) => {
    const comments = t('say.comments', { count: c.comments });
    return t('say.counts', { scenario, for: c.for, against: c.against, comments });
  });
}

/** The heading line of an approved contribution: "Resident K7Q2XM on zone30 (safety), for · 2026-12-10". */
export function contributionHeading(c) {
  const vote = c.vote ? `, ${t(c.vote === 'for' ? 'say.for' : 'say.against')}` : '';
  return `${t('say.heading', { who: c.pseudonym, scenario: c.scenario, theme: c.theme })}${vote} · ${formatDate(c.date)}`;
}

/** What the page says about when the consultation takes contributions. */
export function openingLine({ open, opens, closes }, now = new Date()) {
  if (open) return t('say.openUntil', { date: formatDate(closes) });
  if (now < new Date(opens)) return t('say.opensOn', { date: formatDate(opens) });
  return t('say.closed', { date: formatDate(closes) });
}
