// Colour palettes chosen to be readable with colour-vision deficiency (see docs/viewer.md).
// Sequential data use viridis (zone attributes) and cividis (edge values side by side):
// perceptually uniform, monotonic in lightness, distinguishable for deuteranopia, protanopia and
// tritanopia, and still ordered when printed in greyscale. Building heights are drawn in greys, so
// they never compete with the zone colours (the extrusion already shows height). Differences use
// the diverging PuOr scheme (purple = lower, orange = higher, light grey = no change): it avoids the
// red/green pair entirely. Categorical layers use the Okabe–Ito set, designed for colour-vision
// deficiency.

/** Nine evenly spaced samples of matplotlib's viridis. */
export const VIRIDIS = ['#440154', '#472d7b', '#3b528b', '#2c728e', '#21918c', '#28ae80', '#5ec962', '#addc30', '#fde725'];

/** Nine evenly spaced samples of matplotlib's cividis (designed for colour-vision deficiency). */
export const CIVIDIS = ['#00224e', '#1a386f', '#434e6c', '#61656f', '#7d7c78', '#9b9476', '#bcae6c', '#dec958', '#fee838'];

/** Light to dark grey, for building heights. */
export const GREYS = ['#e6e6e6', '#bdbdbd', '#969696', '#737373', '#525252'];

/** ColorBrewer PuOr, from purple (lowest) through light grey (zero) to orange (highest). */
export const PUOR = ['#2d004b', '#5d3790', '#988dbe', '#cecde4', '#f6f6f7', '#fed7a2', '#ef9e3c', '#be630a', '#7f3b08'];

/** Okabe–Ito colours for categorical layers and the two compared scenarios. */
export const OKABE_ITO = {
  blue: '#0072B2',
  orange: '#E69F00',
  bluishGreen: '#009E73',
  vermillion: '#D55E00',
  skyBlue: '#56B4E9',
  reddishPurple: '#CC79A7',
  yellow: '#F0E442',
  black: '#000000',
};

/**
 * A MapLibre `interpolate` expression spreading `colours` evenly between `min` and `max` of `input`.
 * A degenerate range (min == max) gets the palette's middle colour.
 */
export function rampExpression(input, min, max, colours) {
  if (!(max > min)) return colours[Math.floor(colours.length / 2)];
  const stops = [];
  colours.forEach((colour, i) => {
    stops.push(min + ((max - min) * i) / (colours.length - 1), colour);
  });
  return ['interpolate', ['linear'], input, ...stops];
}

/** A CSS linear-gradient showing `colours` left to right, for legends. */
export function cssGradient(colours) {
  return `linear-gradient(to right, ${colours.join(', ')})`;
}

/** `k` colours spread evenly over a palette (first and last included). */
export function sample(colours, k) {
  if (k <= 1) return [colours[Math.floor(colours.length / 2)]];
  return Array.from({ length: k }, (_, i) => colours[Math.round((i * (colours.length - 1)) / (k - 1))]);
}

/**
 * Class breaks at the quantiles of `values` (at most `k` classes, fewer when values repeat): skewed
 * attributes such as population get classes that each hold about as many zones, instead of one
 * colour for almost everything.
 */
export function quantileBreaks(values, k) {
  const sorted = [...values].sort((a, b) => a - b);
  if (!sorted.length) return [];
  const breaks = [];
  for (let i = 1; i < k; i++) {
    const q = sorted[Math.min(sorted.length - 1, Math.floor((i * sorted.length) / k))];
    if (q > sorted[0] && !breaks.includes(q)) breaks.push(q);
  }
  return breaks;
}

/** A MapLibre `step` expression: colours[0] below breaks[0], colours[i] from breaks[i-1]. */
export function stepExpression(input, breaks, colours) {
  return ['step', input, colours[0], ...breaks.flatMap((b, i) => [b, colours[i + 1]])];
}
