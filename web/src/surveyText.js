// What the consultation page's survey form says and sends (docs/methods-surveys.md#the-viewers-survey-form):
// every user-visible string of survey.js, and pure functions, tested with `npm test`. Nothing here
// touches the page; survey.js puts the results in it as text.

export const SURVEY_TEXT = {
  heading: 'Report what you see',
  intro: 'Point out something on the ground for this consultation: its place, a category, a few words and, if you like, a photo. A moderator checks each observation before it appears on the map.',
  consentAgree: 'I have read and agree to the text above',
  category: 'Category',
  text: 'What you see (at most 2000 characters)',
  photo: 'Photo (optional: its hidden location and camera details are removed before it is stored)',
  place: 'Place',
  noPlace: 'No place chosen yet: click the map, or use your location.',
  useLocation: 'Use my location',
  locating: 'Finding your location…',
  noGeolocation: 'This browser cannot share its location: click the map instead.',
  locationFailed: (message) => `Your location could not be found (${message}): click the map instead.`,
  send: 'Send for moderation',
  needConsent: 'Please tick the consent box first.',
  needPlace: 'Choose a place first: click the map, or use your location.',
  needHttps: 'Observations need this page to be opened over HTTPS.',
  preparing: 'Preparing your observation (a moment of your computer\'s work protects this page from bots)…',
  shrinking: 'Making your photo smaller before sending it…',
  photoTooLarge: (maxBytes) => `The photo is too large even when made smaller: at most ${megabytes(maxBytes)} are accepted.`,
  thanks: (pseudonym) => `Thank you, ${pseudonym}: your observation is waiting for a moderator.`,
  deletionCode: (code) => `Your deletion code (keep it to delete your observation with "Delete your contribution" on this page; it is shown only now): ${code}`,
  published: 'Observations (approved by a moderator)',
  nonePublished: 'No approved observations yet.',
  photoAlt: (category) => `Photo sent with this ${category} observation`,
  closed: 'This consultation does not take observations now.',
  loadFailed: (message) => `Survey observations could not be loaded: ${message}`,
};

/** Bytes as megabytes with one decimal ("8.0 MB"; 1 MB = 1 048 576 bytes, as the server counts). */
export function megabytes(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

/** A place as people read it: "60.17120° N, 24.94120° E" (5 decimals: about 1 m). */
export function placeLine({ lon, lat }) {
  const ns = lat >= 0 ? 'N' : 'S';
  const ew = lon >= 0 ? 'E' : 'W';
  return `${Math.abs(lat).toFixed(5)}° ${ns}, ${Math.abs(lon).toFixed(5)}° ${ew}`;
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

/** The heading of an approved observation: "pothole · 2026-12-10". */
export function observationHeading(properties) {
  return `${properties.category} · ${properties.date}`;
}
