// Which part of the map the LoD2 buildings are fetched for, and when to fetch them again: the view
// grown by half its size on every side (so a small pan needs nothing new), fetched again once the view
// leaves that box, or after any move while the last answer was cut by the server's limit (a smaller
// view may then bring buildings the first one left out). Why: docs/viewer.md, "Buildings in their best LoD".

/** How much of the view's width and height is added on each side of the fetched box. */
export const GROWTH = 0.5;

/** Web Mercator's latitude limit (degrees): a box never reaches past what the map can show. */
const MAX_LAT = 85.051129;

const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

/** `[west, south, east, north]` (degrees) of a MapLibre LngLatBounds-like object. */
export function boxOf(bounds) {
  return [bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()];
}

/** The box to fetch for a view: grown by `growth` of its size on every side, within the world. */
export function grownBox([west, south, east, north], growth = GROWTH) {
  const dx = (east - west) * growth;
  const dy = (north - south) * growth;
  return [clamp(west - dx, -180, 180), clamp(south - dy, -MAX_LAT, MAX_LAT), clamp(east + dx, -180, 180), clamp(north + dy, -MAX_LAT, MAX_LAT)];
}

/** Whether `inner` lies wholly inside `outer` (both `[west, south, east, north]`). */
export function contains(outer, inner) {
  return inner[0] >= outer[0] && inner[1] >= outer[1] && inner[2] <= outer[2] && inner[3] <= outer[3];
}

/** Whether a view needs a new answer, given the last one (`{ box, truncated }`, or null before any). */
export function needsFetch(fetched, view) {
  return !fetched || fetched.truncated || !contains(fetched.box, view);
}

/** `url` with the box as its `bbox` parameter (6 decimals: about 0.1 m). */
export function withBox(url, box) {
  const target = new URL(url, 'http://origin.invalid/');
  target.searchParams.set('bbox', box.map((v) => v.toFixed(6)).join(','));
  return /^https?:\/\//.test(url) ? target.href : `${target.pathname}${target.search}`;
}
