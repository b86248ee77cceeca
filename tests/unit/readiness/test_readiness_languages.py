"""The readiness report's Markdown in Slovak and Italian (from ``--lang``, the environment's LANG, or
the API's Accept-Language), against hand-written lines: level names, status words, dates in the
locale's long form and "days ago" in each language's plural forms."""

from __future__ import annotations

from pathlib import Path

import pytest
import test_readiness as readiness
import test_readiness_api as readiness_api
from fastapi.testclient import TestClient

from civictwin.cli import main
from civictwin.i18n import language
from civictwin.readiness.holdings import Holdings
from civictwin.readiness.render import as_markdown

# What the small readiness twin (conftest.py) holds, and the API over it with a token per role.
holdings = readiness.holdings
client_and_tokens = readiness_api.client_and_tokens


def test_the_markdown_in_each_language(twin_dir: Path, holdings: Holdings) -> None:
    netzero = readiness.report(twin_dir, holdings, "netzero")
    traffic = readiness.report(twin_dir, holdings, "traffic-plan")
    sk, it = language("sk"), language("it")
    assert "**Zrelosť: úroveň 1 zo 4 (stav).** Stupnica: docs/readiness.md." in as_markdown(netzero, lang=sk)
    assert "## Na dosiahnutie úrovne 2 (informatívna)" in as_markdown(netzero, lang=sk)
    assert "**Maturità: livello 1 di 4 (stato).** Scala: docs/readiness.md." in as_markdown(netzero, lang=it)
    english, slovak, italian = (
        as_markdown(traffic, lang=language(code)).splitlines() for code in ("en", "sk", "it")
    )
    assert "- as of 1 June 2022 (1644 days ago)" in english
    assert "- k 1. júna 2022 (pred 1644 dňami)" in slovak
    assert "- aggiornato al 1 giugno 2022 (1644 giorni fa)" in italian
    assert "- k 29. novembra 2026 (pred 2 dňami)" in slovak
    assert "- licencia ODbL-1.0; prístup public; správca City GIS team" in slovak


def test_the_cli_takes_lang_then_the_environment(
    twin_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANG", "sk_SK.UTF-8")
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    main(["readiness", str(twin_dir), "--use-case", "netzero"])
    assert "# Pripravenosť: " in capsys.readouterr().out
    main(["readiness", str(twin_dir), "--use-case", "netzero", "--lang", "it"])
    assert "# Prontezza: " in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main(["readiness", str(twin_dir), "--use-case", "netzero", "--lang", "de"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --lang: expected one of en, sk, it, got 'de'"


def test_the_api_markdown_follows_accept_language_or_lang(
    client_and_tokens: tuple[TestClient, dict[str, str]],
) -> None:
    client, tokens = client_and_tokens
    analyst = {"Authorization": f"Bearer {tokens['analyst']}", "Accept-Language": "it-IT,it;q=0.9"}
    italian = client.get("/readiness/school-streets?format=markdown", headers=analyst)
    assert italian.headers["content-language"] == "it"
    assert "**Maturità: livello 2 di 4 (informativo).**" in italian.text
    slovak = client.get("/readiness/school-streets?format=markdown&lang=sk", headers=analyst)
    assert "**Zrelosť: úroveň 2 zo 4 (informatívna).**" in slovak.text
