"""The locale and its formats (civictwin.i18n) and the gettext catalogues themselves: every message of
the template catalogue translated in Slovak and Italian with the same placeholders, plural forms as
each language has them, numbers and dates against hand-written expectations."""

from __future__ import annotations

import datetime as dt
import pathlib
import re
import subprocess
import sys

import pytest
from babel.messages.pofile import read_po

from civictwin.i18n import DOMAIN, LANGUAGES, LOCALE_DIR, choose, from_environment, language, negotiate

NBSP = "\u00a0"
TRANSLATED = [code for code in LANGUAGES if code != "en"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("sk-SK,sk;q=0.9,en-US;q=0.8,en;q=0.7", "sk"),
        ("it-IT", "it"),
        ("de-DE,de;q=0.9,it;q=0.5,sk;q=0.4", "it"),  # German is not offered: the next preferred is
        ("en;q=0.2,sk;q=0.8", "sk"),  # weights, not order, decide
        ("sk;q=0", "en"),  # q=0 means "not this one"
        ("fr, de", "en"),
        ("", "en"),
        (None, "en"),
        ("sk;q=oops,it", "it"),  # a broken weight counts as 0
    ],
)
def test_the_browser_language_is_negotiated(header: str | None, expected: str) -> None:
    assert negotiate(header) == expected


def test_the_switcher_overrides_the_cookie_which_overrides_the_browser() -> None:
    assert choose(override="it", cookie="sk", accept_language="en") == "it"
    assert choose(override=None, cookie="sk", accept_language="it") == "sk"
    assert choose(override="xx", cookie="de", accept_language="it-CH") == "it"  # unknown choices ignored


def test_the_cli_language_comes_from_lang_then_the_environment() -> None:
    assert from_environment("sk", environ={"LANG": "it_IT.UTF-8"}) == "sk"
    assert from_environment(None, environ={"LANG": "it_IT.UTF-8"}) == "it"
    assert from_environment(None, environ={"LANGUAGE": "de:sk", "LANG": "it_IT.UTF-8"}) == "sk"
    assert from_environment(None, environ={"LC_ALL": "C", "LANG": "sk_SK.UTF-8"}) == "sk"
    assert from_environment(None, environ={}) == "en"


@pytest.mark.parametrize(
    ("code", "decimal", "grouped", "percent", "negative", "date"),
    [
        ("en", "2.4", "1,234.5", "18.6%", "−3.1", "1 December 2026"),
        ("sk", "2,4", f"1{NBSP}234,5", f"18,6{NBSP}%", "−3,1", "1. decembra 2026"),
        ("it", "2,4", "1.234,5", "18,6%", "−3,1", "1 dicembre 2026"),
    ],
)
def test_numbers_percentages_and_dates_follow_the_locale(
    code: str, decimal: str, grouped: str, percent: str, negative: str, date: str
) -> None:
    lang = language(code)
    assert lang.decimal(2.4, decimals=1) == decimal
    assert lang.decimal(1234.5, decimals=1) == grouped
    assert lang.percent(0.186) == percent
    assert lang.decimal(-3.1, decimals=1) == negative
    assert lang.date(dt.date(2026, 12, 1)) == date
    assert lang.date("2026-12-01T09:00:00Z") == date


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        # Slovak: 1; 2, 3, 4; 0 and 5 and more (three forms).
        ("sk", {0: "0 komentárov", 1: "1 komentár", 2: "2 komentáre", 4: "4 komentáre", 5: "5 komentárov", 22: "22 komentárov"}),
        ("it", {0: "0 commenti", 1: "1 commento", 2: "2 commenti", 5: "5 commenti"}),
        ("en", {0: "0 comments", 1: "1 comment", 2: "2 comments"}),
    ],
)  # fmt: skip
def test_plural_forms_follow_each_language(code: str, expected: dict[int, str]) -> None:
    lang = language(code)
    said = {n: lang.ngettext("%(num)d comment", "%(num)d comments", n) % {"num": n} for n in expected}
    assert said == expected


def test_points_with_decimals_take_the_form_for_fractions() -> None:
    sk, it = language("sk"), language("it")
    points = sk.decimal(2.4, decimals=1)
    assert sk.gettext("{points} points fewer").format(points=points) == "o 2,4 bodu menej"
    assert (
        it.gettext("{points} points fewer").format(points=it.decimal(2.4, decimals=1)) == "2,4 punti in meno"
    )


def _placeholders(text: str) -> list[str]:
    """The ``{name}`` (str.format) and ``%(name)s`` (Jinja's new-style gettext) placeholders, sorted."""
    return sorted(re.findall(r"\{\w+\}|%\(\w+\)[sd]", text))


@pytest.mark.parametrize("code", TRANSLATED)
def test_every_message_is_translated_with_the_same_placeholders(code: str) -> None:
    with (LOCALE_DIR / f"{DOMAIN}.pot").open("rb") as pot:
        template = {m.id for m in read_po(pot) if m.id}
    with (LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        catalog = read_po(po, locale=code)
    messages = [m for m in catalog if m.id]
    assert {m.id for m in messages} == template, "run `make messages` and translate the new entries"
    problems = []
    for message in messages:
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if isinstance(message.id, tuple) and len(strings) != catalog.num_plurals:
            problems.append(f"{ids[0]!r}: {len(strings)} plural forms, {code} has {catalog.num_plurals}")
        for string in strings:
            if not string or message.fuzzy:
                problems.append(f"{ids[0]!r}: not translated")
            elif _placeholders(str(string)) != _placeholders(str(ids[-1])):
                problems.append(f"{ids[0]!r}: placeholders {_placeholders(string)} in {string!r}")
    assert not problems


def test_the_template_holds_every_message_the_code_marks(tmp_path: pathlib.Path) -> None:
    """`make messages` run now would add nothing: every string marked in the code (gettext, N_, the
    engines' KPI labels) is in civictwin.pot, so the catalogue test above sees it untranslated."""
    root = pathlib.Path(__file__).resolve().parents[2]
    extracted = tmp_path / "now.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "N_",
         "-k", "KpiMeaning:1", "--no-location", "--sort-output", "-o", str(extracted), "."],
        cwd=root, check=True, capture_output=True,
    )  # fmt: skip
    with extracted.open("rb") as now, (LOCALE_DIR / f"{DOMAIN}.pot").open("rb") as kept:
        missing = {m.id for m in read_po(now) if m.id} - {m.id for m in read_po(kept) if m.id}
    assert missing == set(), "run `make messages` and translate the new messages"
