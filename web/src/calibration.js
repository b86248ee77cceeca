// The calibration of the traffic demand on the scenario page: the verdict in words and the count sites
// coloured by GEH. GEH < 5 is the DMRB / TAG M3.1 threshold for a matched hourly flow, so the colour
// scale is a threshold scale diverging at 5: purples below (good fit), oranges above (misfit), from the
// colour-vision-safe PuOr palette; sites the calibration did not use are grey.

import { PUOR, stepExpression } from './palettes.js';
import { formatIntl } from './i18n.js';
import { t } from './viewerText.js';

/** GEH below which a site-hour counts as matched (DMRB / TAG M3.1). */
export const GEH_OK = 5;

/** Class breaks of the GEH colour scale (vehicles/hour statistic, no unit). */
export const GEH_BREAKS = [2.5, GEH_OK, 10];

/** Colours of the GEH classes: < 2.5, 2.5–5, 5–10, ≥ 10 (PuOr: purple fits, orange misfits). */
export const GEH_COLOURS = [PUOR[1], PUOR[2], PUOR[6], PUOR[8]];

/** Colour of a site with no GEH (not used by the calibration). */
export const NO_GEH = '#bdbdbd';

/** A MapLibre expression colouring a site by its `geh` property (grey when it has none). */
export function gehColourExpression() {
  return ['case', ['==', ['typeof', ['get', 'geh']], 'number'], stepExpression(['get', 'geh'], GEH_BREAKS, GEH_COLOURS), NO_GEH];
}

function percent(share) {
  return Number.isFinite(share) ? formatIntl(share, { style: 'percent', maximumFractionDigits: 0 }) : t('calibration.undefinedShare');
}

/**
 * The fit in words: whether the model meets the DMRB criterion (GEH < 5 at 85% of site-hours), on the
 * sites used before and after, on the held-back sites, and the sites where it does not fit. `record`
 * is `GET /calibration/{version}`; null means the twin has no calibration record.
 */
export function fitSentence(record) {
  if (!record) return t('calibration.uncalibrated');
  const after = record.fit_after || {};
  const before = record.fit_before || {};
  const fit = { after: percent(after.share_geh_ok), hours: formatIntl(after.site_hours ?? 0), before: percent(before.share_geh_ok) };
  let text = t(record.meets_dmrb ? 'calibration.meets' : 'calibration.doesNotMeet', fit);
  const held = record.held_back_after;
  text += held
    ? t('calibration.heldBack', { share: percent(held.share_geh_ok), hours: formatIntl(held.site_hours) })
    : t('calibration.noneHeldBack');
  const misfits = misfitSites(record.sites);
  if (misfits.length) text += t('calibration.misfits', { sites: misfits.join(', ') });
  return text;
}

/** Names of the sites whose worst GEH is 5 or more, worst first ("A08/1 (GEH 12.3)"). */
export function misfitSites(sites) {
  return (sites?.features || [])
    .map((f) => f.properties)
    .filter((p) => typeof p.geh === 'number' && p.geh >= GEH_OK)
    .sort((a, b) => b.geh - a.geh)
    .map((p) => `${p.street ? `${p.street} ` : ''}${p.site} (GEH ${formatIntl(p.geh, { minimumFractionDigits: 1, maximumFractionDigits: 1 })})`);
}
