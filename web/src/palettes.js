// Colour palettes chosen to be readable with colour-vision deficiency (see docs/viewer.md).
// Sequential values use viridis (zones) and cividis (building height): perceptually uniform,
// monotonic in lightness, distinguishable for deuteranopia, protanopia and tritanopia, and still
// ordered when printed in greyscale. Differences use the diverging PuOr scheme (purple = lower,
// orange = higher, light grey = no change): it avoids the red/green pair entirely.
// Categorical layers use the Okabe–Ito set, designed for colour-vision deficiency.

/** Nine evenly spaced samples of matplotlib's viridis. */
export const VIRIDIS = ['#440154', '#472d7b', '#3b528b', '#2c728e', '#21918c', '#28ae80', '#5ec962', '#addc30', '#fde725'];

/** Nine evenly spaced samples of matplotlib's cividis (designed for colour-vision deficiency). */
export const CIVIDIS = ['#00224e', '#1a386f', '#434e6c', '#61656f', '#7d7c78', '#9b9476', '#bcae6c', '#dec958', '#fee838'];

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
