// The civictwin viewer: a map of the twin and a scenario comparison page, switched by the URL hash
// (#map, #scenarios, #readiness). Everything comes from the server that serves this page; nothing from a CDN.

import 'maplibre-gl/dist/maplibre-gl.css';
import './style.css';
import { setWorkerUrl } from 'maplibre-gl';
import { getJson, getToken, setToken } from './api.js';
import { LANGUAGES, STORAGE_KEY, chooseLanguage, language, setLanguage, translatePage } from './i18n.js';
import { startLive } from './live.js';
import { startMapPage } from './mapPage.js';
import { startModerationPage } from './moderation.js';
import { startReadinessPage } from './readinessPage.js';
import { startScenarioPage } from './scenarioPage.js';
import { t } from './viewerText.js';

// The MapLibre worker is shipped beside this bundle by the build (build.mjs).
setWorkerUrl(new URL('./maplibre-gl-worker.mjs', import.meta.url).href);

// Hooks for people and for the browser tests: the map, readiness flags, timings.
window.civictwin = { ready: false, scenarioReady: false, readinessReady: false };

const startMapWithLive = async (root) => startLive(root, await startMapPage(root));
const PAGES = {
  map: { start: startMapWithLive, started: null },
  scenarios: { start: startScenarioPage, started: null },
  readiness: { start: startReadinessPage, started: null },
  moderation: { start: startModerationPage, started: null },
};

function currentPage() {
  const name = window.location.hash.replace(/^#/, '').split('?')[0];
  return name in PAGES ? name : 'map';
}

/** Show the page named by the hash; start it the first time it is shown. */
function route() {
  const name = currentPage();
  for (const key of Object.keys(PAGES)) {
    document.getElementById(`page-${key}`).hidden = key !== name;
    const link = document.querySelector(`nav a[href="#${key}"]`);
    if (key === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const page = PAGES[name];
  if (!page.started) page.started = page.start(document.getElementById(`page-${name}`));
  else page.started.then((p) => p?.map?.resize());
  document.title = `civictwin · ${t(`shell.${name}`)}`;
}

function setUpToken() {
  const form = document.getElementById('token-form');
  const input = document.getElementById('token');
  const state = document.getElementById('token-state');
  const describe = () => {
    state.textContent = getToken() ? t('shell.tokenInUse') : t('shell.noToken');
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    setToken(input.value);
    input.value = '';
    window.location.reload();
  });
  document.getElementById('token-clear').addEventListener('click', () => {
    setToken('');
    window.location.reload();
  });
  describe();
}

/** Name the twin in the header (from the API's landing page); the page works without it. */
async function showTwinTitle() {
  try {
    const landing = await getJson('');
    if (landing.title) document.getElementById('twin-title').textContent = `· ${landing.title}`;
  } catch {
    // a refused token is reported by the page itself
  }
}

/**
 * The page's language: the switcher's stored choice, else the browser's (navigator.languages); the
 * switcher keeps a new choice in localStorage and reloads the page in it.
 */
function setUpLanguage() {
  let stored = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    // storage refused (private mode): the browser's language still applies
  }
  setLanguage(chooseLanguage({ stored, preferred: navigator.languages || [navigator.language] }));
  translatePage(document);
  const select = document.getElementById('language');
  select.replaceChildren(...Object.entries(LANGUAGES).map(([code, name]) => Object.assign(document.createElement('option'), { value: code, textContent: name, lang: code })));
  select.value = language();
  select.addEventListener('change', () => {
    try {
      localStorage.setItem(STORAGE_KEY, select.value);
    } catch {
      // not kept: this visit only
    }
    window.location.reload();
  });
}

setUpLanguage();
setUpToken();
showTwinTitle();
window.addEventListener('hashchange', route);
route();
