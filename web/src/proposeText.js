// What the consultation page's "Propose a scenario" panel says and sends (docs/consultation.md#citizen-proposals):
// every user-visible string, and pure functions turning the API's answers into lines and the form into
// a request body. Nothing here touches the page (propose.js does), so it can be translated and tested
// with `npm test`.

import { addMessages, formatDate, t } from './i18n.js';

/** The panel's messages by language (staff and citizens read them: the same terms as contributeText.js). */
export const MESSAGES = {
  en: {
    'proposal.heading': 'Propose a scenario',
    'proposal.intro': 'Compose your own plan from the interventions below, place each on the map, and send it. Staff check it; once approved it is simulated the same way as the official scenarios and shown below with its own ranges.',
    'proposal.published': 'Proposals approved by staff',
    'proposal.none': 'No approved proposals yet.',
    'proposal.titleLabel': 'Title of your proposal (3 to 120 characters)',
    'proposal.descriptionLabel': 'What it should achieve (optional)',
    'proposal.pickLabel': 'Add an intervention',
    'proposal.add': 'Add',
    'proposal.remove': 'Remove',
    'proposal.place': 'Place on the map',
    'proposal.placing': 'Being placed on the map',
    'proposal.streetsHelp': 'Click the streets it applies to on the map (click again to remove one).',
    'proposal.areaHelp': 'Click the corners of the area on the map, then finish it.',
    'proposal.finishArea': 'Finish the area',
    'proposal.clearArea': 'Start the area again',
    'proposal.streetsChosen': { one: '{count} street chosen', other: '{count} streets chosen' },
    'proposal.cornersChosen': { one: '{count} corner', other: '{count} corners' },
    'proposal.areaDone': 'Area drawn',
    'proposal.mapLabel': 'Map for placing your interventions: streets you can click are drawn in grey, chosen ones in blue',
    'proposal.problemsHeading': 'To fix before sending',
    'proposal.valid': 'Your proposal can be sent.',
    'proposal.consent': 'I agree that my proposal is stored by the city, shown publicly under a random pseudonym once staff approve it, and simulated by the city. No name, e-mail or address is asked for.',
    'proposal.consentLabel': 'I have read and agree to the text above',
    'proposal.send': 'Send for review',
    'proposal.needConsent': 'Please tick the consent box first.',
    'proposal.sent': 'Thank you, {pseudonym}: your proposal (number {id}) is waiting for staff review.',
    'proposal.deletionCode': 'Your deletion code (keep it to delete your proposal; it is shown only now): {code}',
    'proposal.deleteHeading': 'Delete your proposal',
    'proposal.deleteLabel': 'Your deletion code',
    'proposal.deleteButton': 'Delete it',
    'proposal.deleteNeedCode': 'Paste the deletion code you were given.',
    'proposal.deleted': 'Your proposal was deleted.',
    'proposal.failed': 'The proposal could not be sent: {message}',
    'proposal.noStreets': 'The street map is not available to you, so street interventions cannot be placed here.',
    'proposal.resultCaption': '“{title}” beside the official scenarios (mean and 95% range of the runs)',
    'proposal.indicator': 'Indicator',
    'proposal.proposalColumn': 'This proposal',
    'proposal.changeColumn': 'Change against the baseline',
    'proposal.fullResult': 'Its full consultation page',
    'proposal.fullReport': 'The full report of its run',
    'proposal.staffHeading': 'Staff review',
    'proposal.tokenLabel': 'Staff API token',
    'proposal.tokenSave': 'Use this token',
    'proposal.staffRefused': 'This token may not review proposals.',
    'proposal.reasonLabel': 'Reason for proposal {id}',
    'proposal.approve': 'Approve and queue',
    'proposal.reject': 'Reject',
    'proposal.cancel': 'Cancel the run',
    'proposal.needReason': 'Give a reason first.',
    'proposal.headingLine': '{title}, by {pseudonym} · {date} · {state}',
    'proposal.staffLine': '#{id} {title} ({pseudonym}): {state}',
    'proposal.staffReason': 'reason: {reason}',
    'proposal.staffOutcome': 'run: {outcome}',
    'proposal.problemIntervention': 'Intervention {number}: {message}',
    'proposal.problemSetting': 'Intervention {number}, {setting}: {message}',
    'proposal.state.submitted': 'waiting for staff review',
    'proposal.state.rejected': 'rejected',
    'proposal.state.queued': 'approved, waiting for its run',
    'proposal.state.running': 'being simulated',
    'proposal.state.cancelling': 'being cancelled',
    'proposal.state.done': 'simulated',
    'proposal.state.failed': 'the simulation failed',
    'proposal.state.cancelled': 'cancelled',
  },
  sk: {
    'proposal.heading': 'Navrhnite scenár',
    'proposal.intro': 'Zostavte si vlastný plán z opatrení nižšie, každé z nich umiestnite na mapu a plán odošlite. Zamestnanci mesta ho skontrolujú; po schválení sa nasimuluje rovnako ako oficiálne scenáre a zobrazí sa nižšie s vlastnými intervalmi.',
    'proposal.published': 'Návrhy schválené zamestnancami mesta',
    'proposal.none': 'Zatiaľ žiadne schválené návrhy.',
    'proposal.titleLabel': 'Názov vášho návrhu (3 až 120 znakov)',
    'proposal.descriptionLabel': 'Čo má návrh dosiahnuť (nepovinné)',
    'proposal.pickLabel': 'Pridajte opatrenie',
    'proposal.add': 'Pridať',
    'proposal.remove': 'Odstrániť',
    'proposal.place': 'Umiestniť na mapu',
    'proposal.placing': 'Práve sa umiestňuje na mapu',
    'proposal.streetsHelp': 'Na mape kliknite na ulice, ktorých sa opatrenie týka (opätovným kliknutím ulicu odoberiete).',
    'proposal.areaHelp': 'Na mape kliknite na rohy oblasti a potom oblasť dokončite.',
    'proposal.finishArea': 'Dokončiť oblasť',
    'proposal.clearArea': 'Začať oblasť odznova',
    'proposal.streetsChosen': { one: '{count} vybraná ulica', few: '{count} vybrané ulice', many: '{count} vybranej ulice', other: '{count} vybraných ulíc' },
    'proposal.cornersChosen': { one: '{count} roh', few: '{count} rohy', many: '{count} rohu', other: '{count} rohov' },
    'proposal.areaDone': 'Oblasť je nakreslená',
    'proposal.mapLabel': 'Mapa na umiestnenie vašich opatrení: ulice, na ktoré možno kliknúť, sú sivé, vybrané ulice modré',
    'proposal.problemsHeading': 'Pred odoslaním treba opraviť',
    'proposal.valid': 'Váš návrh možno odoslať.',
    'proposal.consent': 'Súhlasím s tým, že mesto môj návrh uloží, po schválení zamestnancami ho zverejní pod náhodným pseudonymom a nasimuluje ho. Meno, e-mail ani adresa sa nevyžadujú.',
    'proposal.consentLabel': 'Prečítal(a) som si text vyššie a súhlasím s ním',
    'proposal.send': 'Odoslať na posúdenie',
    'proposal.needConsent': 'Najprv, prosím, zaškrtnite súhlas.',
    'proposal.sent': 'Ďakujeme, {pseudonym}: váš návrh (číslo {id}) čaká na posúdenie zamestnancami mesta.',
    'proposal.deletionCode': 'Váš kód na vymazanie (uschovajte si ho, ak by ste chceli návrh vymazať; zobrazí sa len teraz): {code}',
    'proposal.deleteHeading': 'Vymazať váš návrh',
    'proposal.deleteLabel': 'Váš kód na vymazanie',
    'proposal.deleteButton': 'Vymazať',
    'proposal.deleteNeedCode': 'Vložte kód na vymazanie, ktorý ste dostali.',
    'proposal.deleted': 'Váš návrh bol vymazaný.',
    'proposal.failed': 'Návrh sa nepodarilo odoslať: {message}',
    'proposal.noStreets': 'Mapa ulíc vám nie je dostupná, preto tu nemožno umiestniť opatrenia na uliciach.',
    'proposal.resultCaption': '„{title}“ vedľa oficiálnych scenárov (priemer a 95 % interval behov)',
    'proposal.indicator': 'Ukazovateľ',
    'proposal.proposalColumn': 'Tento návrh',
    'proposal.changeColumn': 'Zmena voči východiskovému stavu',
    'proposal.fullResult': 'Jeho úplná stránka konzultácie',
    'proposal.fullReport': 'Úplná správa o jeho simulácii',
    'proposal.staffHeading': 'Posúdenie zamestnancami mesta',
    'proposal.tokenLabel': 'API token zamestnanca',
    'proposal.tokenSave': 'Použiť tento token',
    'proposal.staffRefused': 'S týmto tokenom nemožno posudzovať návrhy.',
    'proposal.reasonLabel': 'Dôvod k návrhu {id}',
    'proposal.approve': 'Schváliť a zaradiť na simuláciu',
    'proposal.reject': 'Zamietnuť',
    'proposal.cancel': 'Zrušiť beh',
    'proposal.needReason': 'Najprv uveďte dôvod.',
    'proposal.headingLine': '{title}, autor: {pseudonym} · {date} · {state}',
    'proposal.staffLine': '#{id} {title} ({pseudonym}): {state}',
    'proposal.staffReason': 'dôvod: {reason}',
    'proposal.staffOutcome': 'beh: {outcome}',
    'proposal.problemIntervention': 'Opatrenie {number}: {message}',
    'proposal.problemSetting': 'Opatrenie {number}, {setting}: {message}',
    'proposal.state.submitted': 'čaká na posúdenie zamestnancami mesta',
    'proposal.state.rejected': 'zamietnutý',
    'proposal.state.queued': 'schválený, čaká na svoj beh',
    'proposal.state.running': 'práve sa simuluje',
    'proposal.state.cancelling': 'práve sa ruší',
    'proposal.state.done': 'nasimulovaný',
    'proposal.state.failed': 'simulácia zlyhala',
    'proposal.state.cancelled': 'zrušený',
  },
  it: {
    'proposal.heading': 'Proponi uno scenario',
    'proposal.intro': 'Componi il tuo piano con gli interventi qui sotto, colloca ciascuno sulla mappa e invialo. Il personale lo verifica; una volta approvato, viene simulato come gli scenari ufficiali e mostrato qui sotto con i propri intervalli.',
    'proposal.published': 'Proposte approvate dal personale',
    'proposal.none': 'Ancora nessuna proposta approvata.',
    'proposal.titleLabel': 'Titolo della tua proposta (da 3 a 120 caratteri)',
    'proposal.descriptionLabel': 'Che cosa dovrebbe ottenere (facoltativo)',
    'proposal.pickLabel': 'Aggiungi un intervento',
    'proposal.add': 'Aggiungi',
    'proposal.remove': 'Rimuovi',
    'proposal.place': 'Colloca sulla mappa',
    'proposal.placing': 'Collocazione sulla mappa in corso',
    'proposal.streetsHelp': 'Fai clic sulla mappa sulle strade a cui si applica (un nuovo clic ne rimuove una).',
    'proposal.areaHelp': 'Fai clic sulla mappa sugli angoli dell’area, poi completala.',
    'proposal.finishArea': 'Completa l’area',
    'proposal.clearArea': 'Ricomincia l’area',
    'proposal.streetsChosen': { one: '{count} strada scelta', many: '{count} di strade scelte', other: '{count} strade scelte' },
    'proposal.cornersChosen': { one: '{count} angolo', many: '{count} di angoli', other: '{count} angoli' },
    'proposal.areaDone': 'Area disegnata',
    'proposal.mapLabel': 'Mappa per collocare i tuoi interventi: le strade su cui puoi fare clic sono in grigio, quelle scelte in blu',
    'proposal.problemsHeading': 'Da correggere prima dell’invio',
    'proposal.valid': 'La tua proposta può essere inviata.',
    'proposal.consent': 'Acconsento che la mia proposta sia conservata dal Comune, mostrata pubblicamente con uno pseudonimo casuale dopo l’approvazione del personale e simulata dal Comune. Non vengono chiesti nome, e-mail o indirizzo.',
    'proposal.consentLabel': 'Ho letto il testo qui sopra e lo accetto',
    'proposal.send': 'Invia per la revisione',
    'proposal.needConsent': 'Spunta prima la casella del consenso.',
    'proposal.sent': 'Grazie, {pseudonym}: la tua proposta (numero {id}) è in attesa della revisione del personale.',
    'proposal.deletionCode': 'Il tuo codice di eliminazione (conservalo per eliminare la proposta; è mostrato solo ora): {code}',
    'proposal.deleteHeading': 'Elimina la tua proposta',
    'proposal.deleteLabel': 'Il tuo codice di eliminazione',
    'proposal.deleteButton': 'Eliminala',
    'proposal.deleteNeedCode': 'Incolla il codice di eliminazione che hai ricevuto.',
    'proposal.deleted': 'La tua proposta è stata eliminata.',
    'proposal.failed': 'Non è stato possibile inviare la proposta: {message}',
    'proposal.noStreets': 'La mappa delle strade non è disponibile per te, quindi qui non si possono collocare interventi sulle strade.',
    'proposal.resultCaption': '«{title}» accanto agli scenari ufficiali (media e intervallo al 95% delle simulazioni)',
    'proposal.indicator': 'Indicatore',
    'proposal.proposalColumn': 'Questa proposta',
    'proposal.changeColumn': 'Variazione rispetto al riferimento',
    'proposal.fullResult': 'La sua pagina completa della consultazione',
    'proposal.fullReport': 'Il rapporto completo della sua simulazione',
    'proposal.staffHeading': 'Revisione del personale',
    'proposal.tokenLabel': 'Token API del personale',
    'proposal.tokenSave': 'Usa questo token',
    'proposal.staffRefused': 'Questo token non consente di esaminare le proposte.',
    'proposal.reasonLabel': 'Motivo per la proposta {id}',
    'proposal.approve': 'Approva e metti in coda',
    'proposal.reject': 'Rifiuta',
    'proposal.cancel': 'Annulla la simulazione',
    'proposal.needReason': 'Indica prima un motivo.',
    'proposal.headingLine': '{title}, di {pseudonym} · {date} · {state}',
    'proposal.staffLine': '#{id} {title} ({pseudonym}): {state}',
    'proposal.staffReason': 'motivo: {reason}',
    'proposal.staffOutcome': 'simulazione: {outcome}',
    'proposal.problemIntervention': 'Intervento {number}: {message}',
    'proposal.problemSetting': 'Intervento {number}, {setting}: {message}',
    'proposal.state.submitted': 'in attesa della revisione del personale',
    'proposal.state.rejected': 'rifiutata',
    'proposal.state.queued': 'approvata, in attesa della simulazione',
    'proposal.state.running': 'in simulazione',
    'proposal.state.cancelling': 'annullamento in corso',
    'proposal.state.done': 'simulata',
    'proposal.state.failed': 'la simulazione non è riuscita',
    'proposal.state.cancelled': 'annullata',
  },
};
addMessages(MESSAGES);

const STATES = ['submitted', 'rejected', 'queued', 'running', 'cancelling', 'done', 'failed', 'cancelled'];

/** A proposal's state in words (an unknown state as the server names it). */
export function stateWords(state) {
  return STATES.includes(state) ? t(`proposal.state.${state}`) : state;
}

/** The heading line of a proposal: "Thirty on Kaivokatu, by Resident K7Q2XM · 10 December 2026 · simulated". */
export function proposalHeading(p) {
  return t('proposal.headingLine', { title: p.title, pseudonym: p.pseudonym, date: formatDate(p.date), state: stateWords(p.state) });
}

/** A staff line: "#3 Thirty on Kaivokatu (Resident K7Q2XM): waiting for staff review", plus the decision or outcome. */
export function staffLine(p) {
  const extra = [
    p.reason && t('proposal.staffReason', { reason: p.reason }),
    p.outcome && t('proposal.staffOutcome', { outcome: p.outcome }),
  ].filter(Boolean).join('; ');
  const line = t('proposal.staffLine', { id: p.id, title: p.title, pseudonym: p.pseudonym, state: stateWords(p.state) });
  return extra ? `${line} · ${extra}` : line;
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
 * bounds, a yes/no box, or a choice of words. `label` and `choices` (text by value) are the menu's
 * words in the page's language (`setting_labels`, `choice_labels`); without them the field name and
 * the values are shown.
 */
export function settingInput(name, schema, { label = name.replace(/_/g, ' '), choices = {} } = {}) {
  if (schema.enum) {
    const options = schema.enum.map(String);
    return { kind: 'select', label, options, optionLabels: options.map((o) => choices[o] ?? o), value: String(schema.default ?? schema.enum[0]) };
  }
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

/**
 * A problem as a line: "Intervention 2, speed (km/h): Input should be greater than 0" (the message is
 * the server's, in the page's language). The option `settingLabel(index, key)` names a setting as the form does
 * (the menu's words); a setting it does not know is shown by its key.
 */
export function problemLine({ field, message }, { settingLabel = () => undefined } = {}) {
  const match = /^interventions\[(\d+)\](?:\.(.+))?$/.exec(field);
  if (!match) return `${field.replace(/_/g, ' ')}: ${message}`;
  const number = Number(match[1]) + 1;
  return match[2]
    ? t('proposal.problemSetting', { number, setting: settingLabel(Number(match[1]), match[2]) ?? match[2].replace(/_/g, ' '), message })
    : t('proposal.problemIntervention', { number, message });
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
