"""The consultation page and the viewer in Slovak and Italian in a real headless Chromium, against the
real server over test_viewer.py's demo twin and comparison (docs/viewer.md#languages,
docs/consultation.md#languages): the language from the browser (Accept-Language, navigator.languages),
then from each page's switcher (a cookie on the consultation page, localStorage in the viewer), with
translated words and locale-formatted numbers and dates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import test_viewer as viewer

pytestmark = pytest.mark.e2e

twin_dir = viewer.twin_dir  # the demo twin with the demo-cmp comparison, served for real, and Chromium
server = viewer.server
browser = viewer.browser

NBSP = "\u00a0"


@pytest.fixture
def slovak(browser: Any) -> Iterator[Any]:
    """A page of a browser set to Slovak (its Accept-Language and navigator.languages say sk-SK)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="sk-SK")
    yield context.new_page()
    context.close()


def test_the_consultation_page_in_slovak_then_italian_from_its_switcher(slovak: Any, server: str) -> None:
    page = slovak
    page.goto(f"{server}/consultations/demo-cmp")
    page.wait_for_selector("body[data-consult-state=ready]", state="attached", timeout=60_000)
    assert page.evaluate("document.documentElement.lang") == "sk"
    assert page.inner_text("h1") == "Čo sa zmení s close_main, zone30 v porovnaní s baseline?"
    row = page.inner_text("tr[data-kpi=co2_kg]")
    assert f"1{NBSP}731 kg (1{NBSP}700 až 1{NBSP}762)" in row, row
    assert page.inner_text("header p").endswith("zo dňa 21. novembra 2026")
    page.wait_for_selector("form.say", timeout=60_000)  # the script's section, in the page's language
    assert page.inner_text("#say-h") == "Vyjadrite sa"
    assert "Zatiaľ žiadne schválené komentáre." in page.inner_text("#say")
    page.wait_for_selector("form.survey", timeout=60_000)  # the survey form, in Slovak too
    assert page.inner_text("#survey-h") == "Nahláste, čo vidíte"
    assert "Zatiaľ žiadne schválené pozorovania." in page.inner_text("#survey")
    assert (
        page.inner_text("#survey-place")
        == "Zatiaľ nie je vybrané žiadne miesto: kliknite na mapu alebo použite svoju polohu."
    )

    page.fill("#address", "Mannerheimintie 10")
    page.click("form.near button[type=submit]")
    page.wait_for_url("**address=Mannerheimintie+10", timeout=30_000)
    page.wait_for_selector("body[data-near-state=ready]", state="attached", timeout=30_000)
    assert (
        "2 v okruhu 300 m, z toho sa 2 menia nad rámec náhodného kolísania medzi behmi simulácie. "
        "Najväčšie zmeny: e2: 200 → 120 vozidiel (−80,0); e1: 100 → 140 vozidiel (+40,0)."
    ) in page.inner_text("#near-result")

    page.click("nav.languages a[hreflang=it]")
    page.wait_for_selector("html[lang=it]", state="attached", timeout=30_000)
    page.wait_for_selector("body[data-consult-state=ready]", state="attached", timeout=60_000)
    assert page.inner_text("h1") == "Che cosa cambia con close_main, zone30 rispetto a baseline?"
    assert "1.731 kg (da 1.700 a 1.762)" in page.inner_text("tr[data-kpi=co2_kg]")
    page.goto(f"{server}/consultations/demo-cmp")  # the switcher's cookie outranks the browser's Slovak
    assert page.evaluate("document.documentElement.lang") == "it"
    assert page.inner_text("#near-h") == "Che cosa cambia vicino a me"


def test_the_viewer_in_slovak_then_italian_from_its_switcher(slovak: Any, server: str) -> None:
    page = slovak
    page.goto(f"{server}/viewer/#scenarios")
    page.wait_for_selector("body[data-scenario-state=ready]", state="attached", timeout=30_000)
    assert page.evaluate("document.documentElement.lang") == "sk"
    pages = ["Mapa", "Scenáre", "Pripravenosť", "Moderovanie"]
    assert page.inner_text("nav[aria-label=Stránky]").split() == pages
    assert page.inner_text("#scenarios-heading") == "Porovnanie scenárov"
    assert page.input_value("#language") == "sk"
    travel = page.inner_text("#kpi-table tr[data-kpi=mean_travel_time_s]")
    assert "321 až 375" in travel and "Odlíšiteľné od kolísania" in travel and "52,1 až 338" in travel, travel
    co2 = page.inner_text("#kpi-table tr[data-kpi=co2_kg]")
    assert f"1{NBSP}731" in co2 and f"1{NBSP}700 až 1{NBSP}762" in co2, co2
    assert page.title() == "civictwin · Scenáre"
    finding, seeds = page.inner_text("#summary-list").splitlines()[:2]
    assert finding.startswith(
        "'close_all' nebolo možné vyhodnotiť: simulácia neprešla kontrolou kvality v 3 z 5"
    )
    assert seeds.startswith("Každý scenár sa simuloval 5-krát")  # rebuilt in Slovak
    assert page.inner_text("#not-evaluated").startswith("close_all: nevyhodnotené. Jeho simulácia neprešla")
    assert page.inner_text("#kpi-table tr.engine th").lower() == "doprava"

    page.select_option("#language", "it")  # the switcher keeps the choice and reloads the page in it
    page.wait_for_selector("html[lang=it]", state="attached", timeout=30_000)
    page.wait_for_selector("body[data-scenario-state=ready]", state="attached", timeout=30_000)
    assert page.inner_text("#scenarios-heading") == "Confronta gli scenari"
    travel = page.inner_text("#kpi-table tr[data-kpi=mean_travel_time_s]")
    assert (
        "da 321 a 375" in travel and "Distinguibile dalla variabilità" in travel and "da 52,1 a 338" in travel
    )
    page.goto(f"{server}/viewer/#map")  # a new visit: localStorage outranks the browser's Slovak
    page.wait_for_selector("body[data-map-state=ready]", state="attached", timeout=60_000)
    assert page.evaluate("document.documentElement.lang") == "it"
    assert page.inner_text("#map-status").startswith("Mostrati: ")
    assert page.evaluate("localStorage.getItem('civictwin.lang')") == "it"
    page.goto(f"{server}/viewer/#moderation")  # the moderation page, in Italian before logging in
    page.wait_for_selector("#page-moderation[data-moderation-state=login]", state="attached", timeout=60_000)
    assert page.inner_text("#page-moderation h2") == "Modera una consultazione"
    assert page.inner_text("#moderation-status") == "Accedi con un token del moderatore per vedere la coda."
    options = page.eval_on_selector_all("#moderation-show option", "els => els.map(e => e.textContent)")
    assert options == ["In attesa di decisione", "Approvati", "Rifiutati"]
