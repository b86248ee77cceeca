"""The comparison report in Slovak and Italian: translated headings, verdicts, KPI labels and engine
sections, numbers and the date in the locale's form (hand-written expected strings), and English
as before. Rendered from a hand-made comparison record, without maps (no tables to draw)."""

from __future__ import annotations

import html

import pytest

from civictwin.compare.report import render_report
from civictwin.engines.base import EngineReport, ReportSection
from civictwin.engines.traffic.fitreport import HEADING, UNCALIBRATED
from civictwin.i18n import language
from civictwin.runs import ComparisonRecord, DifferenceRow, EngineRecord, KpiRow

NBSP = "\u00a0"


def _kpi(kpi: str, unit: str, label: str, scenario: str, mean: float, low: float, high: float) -> KpiRow:
    return KpiRow(
        engine="traffic", kpi=kpi, unit=unit, label=label, headline=True, scenario=scenario,
        mean=mean, ci_low=low, ci_high=high, n=5,
    )  # fmt: skip


RECORD = ComparisonRecord(
    id="cmp-1",
    created="2026-11-22T01:00:00+00:00",
    baseline="baseline",
    plans=["close_x"],
    engines=[EngineRecord(name="traffic", version="0.1.0")],
    kpis=[
        _kpi("mean_travel_time_s", "s", "Mean car travel time", "baseline", 1234.4, 1200.25, 1268.75),
        _kpi("mean_travel_time_s", "s", "Mean car travel time", "close_x", 1349.6, 1300.0, 1400.0),
        _kpi("share_car", "share", "Car share of trips", "baseline", 0.186, 0.179, 0.193),
        _kpi("share_car", "share", "Car share of trips", "close_x", 0.172, 0.165, 0.179),
        _kpi("co2_kg", "kg", "CO2 emissions", "baseline", 2.5, 2.25, 2.75),
        _kpi("co2_kg", "kg", "CO2 emissions", "close_x", 0.0123, 0.01, 0.0146),
    ],
    differences=[
        DifferenceRow(
            engine="traffic",
            kpi="mean_travel_time_s",
            plan="close_x",
            mean=115.0,
            ci_low=60.0,
            ci_high=170.0,
            distinguishable=True,
            words="Mean car travel time: up 115 s.",
        ),
        DifferenceRow(
            engine="traffic",
            kpi="share_car",
            plan="close_x",
            mean=-0.014,
            ci_low=-0.03,
            ci_high=0.002,
            distinguishable=False,
            words="Car share of trips: within noise.",
        ),
        DifferenceRow(
            engine="traffic",
            kpi="co2_kg",
            plan="close_x",
            mean=-2.4877,
            ci_low=-2.7,
            ci_high=-2.2,
            distinguishable=True,
            words="CO2 emissions: down 2.49 kg.",
        ),
    ],
    summary=["Each scenario was simulated 5 times with different random seeds (English record)."],
)
TRAFFIC = EngineReport(
    method="A method the catalogue does not know stays in English.",
    sections=(ReportSection(HEADING, paragraphs=(UNCALIBRATED,)),),
)


def _page(code: str) -> str:
    return render_report(
        RECORD, scenarios=[], tables={}, baseline_tables={}, engine_reports={"traffic": TRAFFIC},
        parameters={"traffic": {"iterations": 3}}, manifest={"seeds": [1, 2, 3, 4, 5]}, lang=language(code),
    )  # fmt: skip


def test_the_report_in_slovak() -> None:
    page = _page("sk")
    assert '<html lang="sk">' in page
    assert "<title>Porovnanie: close_x oproti baseline</title>" in page
    for heading in ("Stručne", "Čo sa simulovalo", "Hlavné ukazovatele", "Zmeny oproti východiskovému stavu",
                    "Kalibrácia podľa sčítaní dopravy", "Predpoklady a parametre", "Ako tieto čísla zopakovať"):  # fmt: skip
        assert f"<h2>{heading}</h2>" in page
    assert '<time datetime="2026-11-22T01:00:00+00:00">22. novembra 2026</time>' in page
    # the KPI table: translated labels and units, grouped thousands, decimal commas, percent with a space
    assert "<th>Ukazovateľ</th>" in page and "<th>Priemerný čas jazdy autom <small>(s)</small></th>" in page
    assert f"<td>1{NBSP}234<br><small>1{NBSP}200 až 1{NBSP}269</small></td>" in page
    assert f"<td>18,6{NBSP}%<br><small>17,9{NBSP}% až 19,3{NBSP}%</small></td>" in page
    assert "<td>2,50<br><small>2,25 až 2,75</small></td>" in page
    assert "<td>0,0123<br><small>0,01 až 0,0146</small></td>" in page
    assert "<small>skutočná zmena</small>" in page and "<small>v rámci náhodného kolísania</small>" in page
    assert "-2,49<br><small>skutočná zmena</small>" in page
    # the summary from the numbers, the engine's marked words translated, its unmarked ones kept
    assert "Každý scenár sa simuloval 5-krát s rôznymi náhodnými semenami." in page
    assert "(English record)" not in page
    assert "Dopyt nie je kalibrovaný: pre tohto digitálneho dvojníka neexistuje záznam o kalibrácii" in page
    assert "<p>A method the catalogue does not know stays in English.</p>" in page
    assert "<p>Semená: 1, 2, 3, 4, 5. Úplný záznam" in page
    assert (
        "Mapové údaje © prispievatelia OpenStreetMap (ODbL). Vytvorené nástrojom civictwin; moduly: traffic 0.1.0."
        in page
    )


def test_the_report_in_italian() -> None:
    page = _page("it")
    assert '<html lang="it">' in page
    for heading in ("In breve", "Che cosa è stato simulato", "Indicatori principali", "Ipotesi e parametri",
                    "Calibrazione sui conteggi del traffico"):  # fmt: skip
        assert f"<h2>{heading}</h2>" in page
    assert '<time datetime="2026-11-22T01:00:00+00:00">22 novembre 2026</time>' in page
    assert "<th>Tempo medio di viaggio in auto <small>(s)</small></th>" in page
    assert "<td>1.234<br><small>da 1.200 a 1.269</small></td>" in page
    assert "<td>18,6%<br><small>da 17,9% a 19,3%</small></td>" in page
    assert "<td>0,0123<br><small>da 0,01 a 0,0146</small></td>" in page
    assert "<small>variazione reale</small>" in page and "<small>entro la variabilità casuale</small>" in page
    assert "Ogni scenario è stato simulato 5 volte con semi casuali diversi." in page
    assert "La domanda non è calibrata" in page


def test_english_keeps_its_words_and_numbers() -> None:
    page = _page("en")
    assert '<html lang="en">' in page and "<title>Comparison: close_x vs baseline</title>" in page
    assert "<h2>In short</h2>" in page and "(English record)" in page  # the record's own summary
    assert "<td>1,234<br><small>1,200 to 1,269</small></td>" in page
    assert "<td>18.6%<br><small>17.9% to 19.3%</small></td>" in page
    assert "<td>0.0123<br><small>0.01 to 0.0146</small></td>" in page
    assert '<time datetime="2026-11-22T01:00:00+00:00">22 November 2026</time>' in page
    assert "The demand is uncalibrated" in page


@pytest.mark.parametrize("code", ["sk", "it"])
def test_a_warned_engine_is_not_called_within_noise_in_any_language(code: str) -> None:
    warned = EngineReport(warnings=("Implausible demand.",))
    page = render_report(
        RECORD, scenarios=[], tables={}, baseline_tables={}, engine_reports={"traffic": warned},
        parameters={}, manifest={}, lang=language(code),
    )  # fmt: skip
    verdict = {"sk": "nehodnotené: nevierohodný vstup", "it": "non valutato: dato di ingresso non plausibile"}
    assert page.count(verdict[code]) == 3  # every KPI of the warned engine
    caveat = {"sk": "(Pozri však varovanie vyššie", "it": "(Ma si veda l'avviso qui sopra"}
    assert caveat[code] in html.unescape(page)  # the summary's sentence about noise points to the warning


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("en", ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]),
        ("sk", ["0,0", "0,2", "0,4", "0,6", "0,8", "1,0"]),
        ("it", ["0,0", "0,2", "0,4", "0,6", "0,8", "1,0"]),
    ],
)
def test_figure_ticks_take_the_locales_decimal_sign(code: str, expected: list[str]) -> None:
    import matplotlib.pyplot as plt

    from civictwin.compare.report import _LocaleTicks

    figure, axis = plt.subplots()
    axis.set_xlim(0.0, 1.0)
    axis.xaxis.set_major_formatter(_LocaleTicks(language(code)))
    figure.canvas.draw()
    labels = [label.get_text() for label in axis.get_xticklabels()]
    plt.close(figure)
    assert labels == expected
