// What the viewer's moderation page says and sends (docs/consultation.md#comments-and-votes): every
// user-visible string of moderation.js, and pure functions, tested with `npm test`.

export const MODERATION_TEXT = {
  title: 'Moderation',
  heading: 'Moderate a consultation',
  intro: 'Comments, votes and survey observations wait here until a moderator approves or rejects them with a reason. Only approved ones are ever public. The reason is recorded and shown to moderators only.',
  consultation: 'Consultation',
  show: 'Show',
  kind: 'Kind',
  statuses: [['pending', 'Waiting for a decision'], ['approved', 'Approved'], ['rejected', 'Rejected']],
  kinds: [['', 'Everything'], ['comment', 'Comments and votes'], ['observation', 'Survey observations']],
  tokenLabel: 'Moderator token',
  tokenUse: 'Log in',
  tokenHint: 'Paste the moderator token the city gave you (kept in this browser tab only).',
  noComparisons: 'No published comparisons: there is nothing to moderate.',
  loading: 'Loading the queue…',
  empty: 'Nothing here.',
  needToken: 'Log in with a moderator token to see the queue.',
  reason: 'Reason (recorded, shown to moderators only)',
  needReason: 'Give a reason first.',
  approve: 'Approve',
  reject: 'Reject',
  decided: (status, reason) => `${status === 'approved' ? 'Approved' : 'Rejected'}: ${reason}`,
  previous: 'Previous page',
  next: 'Next page',
  photoAlt: (id) => `Photo sent with observation ${id}`,
  photoFailed: 'The photo could not be loaded.',
  open: (until) => `Open for contributions; moderation possible until ${until.slice(0, 10)}.`,
  closed: (until) => `Closed for contributions; moderation possible until ${until.slice(0, 10)}.`,
};

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
 * The heading of one item: "#12 · Resident K7Q2XM · comment on zone30 (safety), for · 2026-12-10"
 * or "#13 · Resident B2C3D4 · observation: pothole · 2026-12-10".
 */
export function itemHeading(c) {
  const day = c.created ? c.created.slice(0, 10) : c.date;
  const what = c.kind === 'observation'
    ? `observation: ${c.theme}`
    : `comment on ${c.scenario} (${c.theme})${c.vote ? `, ${c.vote}` : ''}`;
  return `#${c.id} · ${c.pseudonym} · ${what} · ${day}`;
}

/** Where an item is, when it has a place: "at 60.17120, 24.94120 (lat, lon)". */
export function itemPlace(c) {
  if (c.lon == null || c.lat == null) return '';
  return `at ${c.lat.toFixed(5)}, ${c.lon.toFixed(5)} (lat, lon)`;
}

/** "Items 21–40 of 45" (or "0 items"). */
export function pageLine({ total, offset, count }) {
  if (!total || !count) return `${total || 0} items`;
  return `Items ${offset + 1}–${offset + count} of ${total}`;
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
