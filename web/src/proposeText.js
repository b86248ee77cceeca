// What the consultation page's "Propose a scenario" panel says and sends (docs/consultation.md#citizen-proposals):
// every user-visible string, and pure functions turning the API's answers into lines and the form into
// a request body. Nothing here touches the page (propose.js does), so it can be translated and tested
// with `npm test`.

/** Every string the panel shows; functions take the values they name. */
export const PROPOSE_TEXT = {
  heading: 'Propose a scenario',
  intro: 'Compose your own plan from the interventions below, place each on the map, and send it. Staff check it; once approved it is simulated the same way as the official scenarios and shown below with its own ranges.',
  published: 'Proposals approved by staff',
  none: 'No approved proposals yet.',
  titleLabel: 'Title of your proposal (3 to 120 characters)',
  descriptionLabel: 'What it should achieve (optional)',
  pickLabel: 'Add an intervention',
  add: 'Add',
  remove: 'Remove',
  place: 'Place on the map',
  placing: 'Being placed on the map',
  streetsHelp: 'Click the streets it applies to on the map (click again to remove one).',
  areaHelp: 'Click the corners of the area on the map, then finish it.',
  finishArea: 'Finish the area',
  clearArea: 'Start the area again',
  streetsChosen: (n) => (n === 1 ? '1 street chosen' : `${n} streets chosen`),
  cornersChosen: (n) => (n === 1 ? '1 corner' : `${n} corners`),
  areaDone: 'Area drawn',
  mapLabel: 'Map for placing your interventions: streets you can click are drawn in grey, chosen ones in blue',
  problemsHeading: 'To fix before sending',
  valid: 'Your proposal can be sent.',
  checking: 'Checking…',
  consent: 'I agree that my proposal is stored by the city, shown publicly under a random pseudonym once staff approve it, and simulated by the city. No name, e-mail or address is asked for.',
  consentLabel: 'I have read and agree to the text above',
  send: 'Send for review',
  needConsent: 'Please tick the consent box first.',
  sent: (pseudonym, id) => `Thank you, ${pseudonym}: your proposal (number ${id}) is waiting for staff review.`,
  deletionCode: (code) => `Your deletion code (keep it to delete your proposal; it is shown only now): ${code}`,
  deleteHeading: 'Delete your proposal',
  deleteLabel: 'Your deletion code',
  deleteButton: 'Delete it',
  deleteNeedCode: 'Paste the deletion code you were given.',
  deleted: 'Your proposal was deleted.',
  failed: (message) => `The proposal could not be sent: ${message}`,
  noStreets: 'The street map is not available to you, so street interventions cannot be placed here.',
  resultCaption: (title) => `"${title}" beside the official scenarios (mean and 95% range of the runs)`,
  indicator: 'Indicator',
  proposalColumn: 'This proposal',
  changeColumn: 'Change against the baseline',
  fullResult: 'Its full consultation page',
  staffHeading: 'Staff review',
  tokenLabel: 'Staff API token',
  tokenSave: 'Use this token',
  staffRefused: 'This token may not review proposals.',
  reasonLabel: (id) => `Reason for proposal ${id}`,
  approve: 'Approve and queue',
  reject: 'Reject',
  cancel: 'Cancel the run',
  needReason: 'Give a reason first.',
  yes: 'yes',
  no: 'no',
};

const STATES = {
  submitted: 'waiting for staff review',
  rejected: 'rejected',
  queued: 'approved, waiting for its run',
  running: 'being simulated',
  cancelling: 'being cancelled',
  done: 'simulated',
  failed: 'the simulation failed',
  cancelled: 'cancelled',
};

/** A proposal's state in words. */
export function stateWords(state) {
  return STATES[state] || state;
}

/** The heading line of a proposal: "Thirty on Kaivokatu, by Resident K7Q2XM · 2026-12-10 · simulated". */
export function proposalHeading(p) {
  return `${p.title}, by ${p.pseudonym} · ${p.date} · ${stateWords(p.state)}`;
}

/** A staff line: "#3 submitted: Thirty on Kaivokatu (Resident K7Q2XM)", plus the decision or outcome. */
export function staffLine(p) {
  const extra = [p.reason && `reason: ${p.reason}`, p.outcome && `run: ${p.outcome}`].filter(Boolean).join('; ');
  return `#${p.id} ${p.state}: ${p.title} (${p.pseudonym})${extra ? ` · ${extra}` : ''}`;
}

/** Which staff actions a proposal in `state` allows. */
export function staffActions(state) {
  if (state === 'submitted') return ['approve', 'reject'];
  if (state === 'queued' || state === 'running') return ['cancel'];
  return [];
}

/** A menu entry's label with its engine: "speed limit (traffic)". */
export function menuLabel(entry) {
  return `${entry.label} (${entry.engine})`;
}

/**
 * The form input of one setting, from its JSON-schema description in the menu: a number with its
 * bounds, a yes/no box, or a choice of words.
 */
export function settingInput(name, schema) {
  const label = name.replace(/_/g, ' ');
  if (schema.enum) return { kind: 'select', label, options: schema.enum.map(String), value: String(schema.default ?? schema.enum[0]) };
  if (schema.type === 'boolean') return { kind: 'checkbox', label, value: Boolean(schema.default) };
  if (schema.type === 'number' || schema.type === 'integer') {
    const min = schema.minimum ?? schema.exclusiveMinimum;
    return { kind: 'number', label, min, max: schema.maximum ?? schema.exclusiveMaximum, step: schema.type === 'integer' ? 1 : 'any', value: schema.default ?? '' };
  }
  return { kind: 'text', label, value: schema.default ?? '' };
}

/** A setting's value as the API wants it (numbers as numbers; an empty optional number left out). */
export function settingValue(schema, raw) {
  if (schema.type === 'boolean') return Boolean(raw);
  if (schema.type === 'number' || schema.type === 'integer') return raw === '' || raw == null ? undefined : Number(raw);
  return raw;
}

/** WKT of a polygon drawn from clicked corners ([lon, lat] pairs), closed, 6 decimals (about 0.1 m). */
export function polygonWkt(corners) {
  if (corners.length < 3) return '';
  const ring = [...corners, corners[0]].map(([lon, lat]) => `${lon.toFixed(6)} ${lat.toFixed(6)}`);
  return `POLYGON ((${ring.join(', ')}))`;
}

/**
 * The JSON body of a proposal: title, description and each intervention with its type, its place
 * (OSM ways clicked, or the polygon drawn) and the settings given.
 */
export function proposalBody({ title, description, items }, consent) {
  const interventions = items.map((item) => {
    const out = { type: item.type };
    if (item.osmIds?.length) out.osm_ids = [...item.osmIds];
    if (item.corners?.length) out.polygon = polygonWkt(item.corners);
    for (const [name, value] of Object.entries(item.settings || {})) if (value !== undefined) out[name] = value;
    return out;
  });
  const body = { title: title.trim(), interventions };
  if (description.trim()) body.description = description.trim();
  if (consent !== undefined) body.consent = Boolean(consent);
  return body;
}

/** The problems of intervention `index` (and the whole-proposal ones when `index` is null). */
export function problemsFor(problems, index) {
  if (index == null) return problems.filter((p) => !p.field.startsWith('interventions['));
  const prefix = `interventions[${index}]`;
  return problems.filter((p) => p.field === prefix || p.field.startsWith(`${prefix}.`));
}

/** A problem as a line: "Intervention 2, speed kmh: Input should be greater than 0". */
export function problemLine({ field, message }) {
  const match = /^interventions\[(\d+)\](?:\.(.+))?$/.exec(field);
  if (!match) return `${field.replace(/_/g, ' ')}: ${message}`;
  const where = `Intervention ${Number(match[1]) + 1}`;
  return match[2] ? `${where}, ${match[2].replace(/_/g, ' ')}: ${message}` : `${where}: ${message}`;
}

/** A value with its range: "371 (352 to 390)". */
export function rangeText(value) {
  if (!value) return '–';
  return value.text ?? '–';
}

/**
 * Rows of a proposal's result beside the official scenarios: per indicator of the proposal's run, the
 * official scenarios' values (from the consultation's own data, matched by KPI), the proposal's value
 * with its interval, and its change in words.
 */
export function resultRows(officialKpis, result) {
  return result.kpis.map((k) => {
    const official = officialKpis.find((o) => o.kpi === k.kpi);
    return {
      kpi: k.kpi,
      label: k.label,
      official: official ? official.values.map((v) => ({ scenario: v.scenario, text: v.text })) : [],
      proposal: rangeText(k.value),
      change: k.change ? k.change.words : '–',
    };
  });
}
