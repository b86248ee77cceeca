// What the consultation page's survey form says and sends (docs/methods-surveys.md#the-viewers-survey-form):
// every user-visible string of survey.js, and pure functions, tested with `npm test`. Nothing here
// touches the page; survey.js puts the results in it as text.

import { addMessages, formatDate, formatIntl, t } from './i18n.js';

/** The survey form's messages by language (the same terms as contributeText.js's "Have your say"). */
export const MESSAGES = {
  en: {
    'survey.heading': 'Report what you see',
    'survey.intro': 'Point out something on the ground for this consultation: its place, a category, a few words and, if you like, a photo. A moderator checks each observation before it appears on the map.',
    'survey.consentAgree': 'I have read and agree to the text above',
    'survey.category': 'Category',
    'survey.text': 'What you see (at most 2000 characters)',
    'survey.photo': 'Photo (optional: its hidden location and camera details are removed before it is stored)',
    'survey.place': 'Place:',
    'survey.noPlace': 'No place chosen yet: click the map, or use your location.',
    'survey.useLocation': 'Use my location',
    'survey.locating': 'Finding your location…',
    'survey.noGeolocation': 'This browser cannot share its location: click the map instead.',
    'survey.locationFailed': 'Your location could not be found ({message}): click the map instead.',
    'survey.send': 'Send for moderation',
    'survey.needConsent': 'Please tick the consent box first.',
    'survey.needPlace': 'Choose a place first: click the map, or use your location.',
    'survey.needHttps': 'Observations need this page to be opened over HTTPS.',
    'survey.preparing': 'Preparing your observation (a moment of your computer’s work protects this page from bots)…',
    'survey.shrinking': 'Making your photo smaller before sending it…',
    'survey.photoTooLarge': 'The photo is too large even when made smaller: at most {size} are accepted.',
    'survey.megabytes': '{size} MB',
    'survey.thanks': 'Thank you, {pseudonym}: your observation is waiting for a moderator.',
    'survey.deletionCode': 'Your deletion code (keep it to delete your observation with “Delete your contribution” on this page; it is shown only now): {code}',
    'survey.published': 'Observations (approved by a moderator)',
    'survey.nonePublished': 'No approved observations yet.',
    'survey.photoAlt': 'Photo sent with this {category} observation',
    'survey.closed': 'This consultation does not take observations now.',
    'survey.loadFailed': 'Survey observations could not be loaded: {message}',
    'survey.placeLine': '{lat}° {ns}, {lon}° {ew}',
    'survey.north': 'N',
    'survey.south': 'S',
    'survey.east': 'E',
    'survey.west': 'W',
  },
  sk: {
    'survey.heading': 'Nahláste, čo vidíte',
    'survey.intro': 'Upozornite v rámci tejto konzultácie na niečo v teréne: uveďte miesto, kategóriu, pár slov a, ak chcete, aj fotografiu. Moderátor každé pozorovanie skontroluje skôr, než sa objaví na mape.',
    'survey.consentAgree': 'Prečítal(a) som si text vyššie a súhlasím s ním',
    'survey.category': 'Kategória',
    'survey.text': 'Čo vidíte (najviac 2000 znakov)',
    'survey.photo': 'Fotografia (nepovinná: skrytá poloha a údaje o fotoaparáte sa pred uložením odstránia)',
    'survey.place': 'Miesto:',
    'survey.noPlace': 'Zatiaľ nie je vybrané žiadne miesto: kliknite na mapu alebo použite svoju polohu.',
    'survey.useLocation': 'Použiť moju polohu',
    'survey.locating': 'Zisťuje sa vaša poloha…',
    'survey.noGeolocation': 'Tento prehliadač nedokáže poskytnúť polohu: kliknite namiesto toho na mapu.',
    'survey.locationFailed': 'Vašu polohu sa nepodarilo zistiť ({message}): kliknite namiesto toho na mapu.',
    'survey.send': 'Odoslať na moderovanie',
    'survey.needConsent': 'Najprv, prosím, zaškrtnite súhlas.',
    'survey.needPlace': 'Najprv vyberte miesto: kliknite na mapu alebo použite svoju polohu.',
    'survey.needHttps': 'Pozorovania vyžadujú, aby bola táto stránka otvorená cez HTTPS.',
    'survey.preparing': 'Pripravuje sa vaše pozorovanie (chvíľa práce vášho počítača chráni túto stránku pred botmi)…',
    'survey.shrinking': 'Fotografia sa pred odoslaním zmenšuje…',
    'survey.photoTooLarge': 'Fotografia je príliš veľká aj po zmenšení: prijíma sa najviac {size}.',
    'survey.megabytes': '{size} MB',
    'survey.thanks': 'Ďakujeme, {pseudonym}: vaše pozorovanie čaká na moderátora.',
    'survey.deletionCode': 'Váš kód na vymazanie (uschovajte si ho, ak by ste chceli pozorovanie vymazať pomocou „Vymazať váš príspevok“ na tejto stránke; zobrazí sa len teraz): {code}',
    'survey.published': 'Pozorovania (schválené moderátorom)',
    'survey.nonePublished': 'Zatiaľ žiadne schválené pozorovania.',
    'survey.photoAlt': 'Fotografia odoslaná s týmto pozorovaním v kategórii {category}',
    'survey.closed': 'Táto konzultácia teraz neprijíma pozorovania.',
    'survey.loadFailed': 'Pozorovania z prieskumu sa nepodarilo načítať: {message}',
    'survey.placeLine': '{lat}° {ns}, {lon}° {ew}',
    'survey.north': 's. š.',
    'survey.south': 'j. š.',
    'survey.east': 'v. d.',
    'survey.west': 'z. d.',
  },
  it: {
    'survey.heading': 'Segnala ciò che vedi',
    'survey.intro': 'Segnala per questa consultazione qualcosa sul territorio: il luogo, una categoria, qualche parola e, se vuoi, una foto. Un moderatore verifica ogni osservazione prima che compaia sulla mappa.',
    'survey.consentAgree': 'Ho letto il testo qui sopra e lo accetto',
    'survey.category': 'Categoria',
    'survey.text': 'Che cosa vedi (al massimo 2000 caratteri)',
    'survey.photo': 'Foto (facoltativa: la posizione nascosta e i dati della fotocamera vengono rimossi prima della conservazione)',
    'survey.place': 'Luogo:',
    'survey.noPlace': 'Nessun luogo ancora scelto: fai clic sulla mappa o usa la tua posizione.',
    'survey.useLocation': 'Usa la mia posizione',
    'survey.locating': 'Ricerca della tua posizione…',
    'survey.noGeolocation': 'Questo browser non può condividere la posizione: fai invece clic sulla mappa.',
    'survey.locationFailed': 'Non è stato possibile trovare la tua posizione ({message}): fai invece clic sulla mappa.',
    'survey.send': 'Invia per la moderazione',
    'survey.needConsent': 'Spunta prima la casella del consenso.',
    'survey.needPlace': 'Scegli prima un luogo: fai clic sulla mappa o usa la tua posizione.',
    'survey.needHttps': 'Per le osservazioni questa pagina deve essere aperta tramite HTTPS.',
    'survey.preparing': 'Preparazione della tua osservazione (un momento di lavoro del tuo computer protegge questa pagina dai bot)…',
    'survey.shrinking': 'Riduzione della foto prima dell’invio…',
    'survey.photoTooLarge': 'La foto è troppo grande anche dopo la riduzione: si accettano al massimo {size}.',
    'survey.megabytes': '{size} MB',
    'survey.thanks': 'Grazie, {pseudonym}: la tua osservazione è in attesa di un moderatore.',
    'survey.deletionCode': 'Il tuo codice di eliminazione (conservalo per eliminare l’osservazione con «Elimina il tuo contributo» in questa pagina; è mostrato solo ora): {code}',
    'survey.published': 'Osservazioni (approvate da un moderatore)',
    'survey.nonePublished': 'Ancora nessuna osservazione approvata.',
    'survey.photoAlt': 'Foto inviata con questa osservazione della categoria {category}',
    'survey.closed': 'Questa consultazione al momento non accetta osservazioni.',
    'survey.loadFailed': 'Non è stato possibile caricare le osservazioni del sondaggio: {message}',
    'survey.placeLine': '{lat}° {ns}, {lon}° {ew}',
    'survey.north': 'N',
    'survey.south': 'S',
    'survey.east': 'E',
    'survey.west': 'O',
  },
};
addMessages(MESSAGES);

/** Bytes as megabytes with one decimal in the language's format ("8.0 MB", "8,0 MB"; 1 MB = 1 048 576 bytes, as the server counts). */
export function megabytes(bytes) {
  return t('survey.megabytes', { size: formatIntl(bytes / 1048576, { minimumFractionDigits: 1, maximumFractionDigits: 1 }) });
}

/** A place as people read it: "60.17120° N, 24.94120° E", "60,17120° s. š., 24,94120° v. d." (5 decimals: about 1 m). */
export function placeLine({ lon, lat }) {
  const degrees = (value) => formatIntl(Math.abs(value), { minimumFractionDigits: 5, maximumFractionDigits: 5 });
  return t('survey.placeLine', {
    lat: degrees(lat), ns: t(lat >= 0 ? 'survey.north' : 'survey.south'),
    lon: degrees(lon), ew: t(lon >= 0 ? 'survey.east' : 'survey.west'),
  });
}

/**
 * The form's fields as [name, value] pairs, in the order the server documents (the photo is added
 * by the caller): consent, category, text, lon and lat to 6 decimals, and the proof of work.
 */
export function observationFields({ consent, category, text, place }, proof) {
  return [
    ['consent', consent ? 'true' : 'false'],
    ['category', category],
    ['text', (text || '').trim()],
    ['lon', place.lon.toFixed(6)],
    ['lat', place.lat.toFixed(6)],
    ['challenge', proof.challenge],
    ['nonce', proof.nonce],
  ];
}

/** What to do with a chosen photo of `size` bytes: send it as it is, or shrink it first. */
export function photoPlan(size, maxBytes) {
  if (!size) return 'none';
  return size <= maxBytes ? 'as-is' : 'shrink';
}

/** A picture's size once its longest side is at most `maxSide` px (the server's own limit, 2048). */
export function shrunkSize(width, height, maxSide = 2048) {
  const scale = Math.min(1, maxSide / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** The heading of an approved observation: "pothole · 10 December 2026" (the category is the twin's own word). */
export function observationHeading(properties) {
  return `${properties.category} · ${formatDate(properties.date)}`;
}
