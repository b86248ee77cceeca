// What the consultation page's "Have your say" section says and sends: pure functions, tested with
// `npm test`. Nothing here touches the page; contribute.js puts the results in it as text.

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
    const comments = c.comments === 1 ? '1 comment' : `${c.comments} comments`;
    return `${scenario}: ${c.for} for, ${c.against} against, ${comments}`;
  });
}

/** The heading line of an approved contribution: "Resident K7Q2XM on zone30 (safety), for · 2026-12-10". */
export function contributionHeading(c) {
  const vote = c.vote ? `, ${c.vote}` : '';
  return `${c.pseudonym} on ${c.scenario} (${c.theme})${vote} · ${c.date}`;
}

/** What the page says about when the consultation takes contributions. */
export function openingLine({ open, opens, closes }, now = new Date()) {
  const day = (iso) => iso.slice(0, 10);
  if (open) return `Open for comments and votes until ${day(closes)}.`;
  if (now < new Date(opens)) return `Comments and votes open on ${day(opens)}.`;
  return `This consultation closed on ${day(closes)}; comments are no longer taken.`;
}
