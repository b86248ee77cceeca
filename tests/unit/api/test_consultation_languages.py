"""The consultation page in Slovak and Italian (docs/consultation.md#languages): the language from
Accept-Language, the switcher's ``lang`` parameter and its cookie; words from the catalogues, shares
with a decimal comma and said in points in each language's grammar, dates in the locale's long form."""

from __future__ import annotations

import test_consultations_api as consult
from fastapi.testclient import TestClient

twin = consult.twin  # the consultation API tests' twin and client, as this module's fixtures
client = consult.client

PAGE = "/consultations/consult-public"
SK_CAR = (
    "Podiel ciest autom: z 18,6\u00a0% na 16,2\u00a0%, o 2,4 bodu menej (95\u00a0% IS −3,1 až −1,7 bodu)."
)
IT_CAR = "Quota di spostamenti in auto: da 18,6% a 16,2%, 2,4 punti in meno (IC 95% da −3,1 a −1,7 punti)."


def test_the_browser_language_chooses_slovak(client: TestClient) -> None:
    response = client.get(PAGE, headers={"Accept-Language": "sk-SK,sk;q=0.9,en;q=0.5"})
    html = response.text
    assert response.headers["content-language"] == "sk"
    assert '<html lang="sk">' in html
    assert SK_CAR in html
    assert '<th scope="row">Podiel ciest autom</th>' in html
    assert '<td data-label="baseline">18,6\u00a0% (17,9\u00a0% až 19,3\u00a0%)</td>' in html
    assert "porovnanie consult-public zo dňa 30. novembra 2026" in html
    assert "Nespĺňa</strong> obvyklé kritérium" in html
    summary = client.get(f"{PAGE}/data", headers={"Accept-Language": "sk"}).json()["summary"]
    assert summary == [
        "Každý scenár sa simuloval 5-krát s rôznymi náhodnými semenami. Zmena sa považuje za skutočnú, len "
        "keď vyčnieva nad kolísanie medzi týmito behmi (95\u00a0% spoľahlivosť); inak sa uvádza ako v rámci "
        "náhodného kolísania.",
        f"'zone30' v porovnaní s 'baseline': {SK_CAR}",
    ]
    assert '<a href="?lang=it" hreflang="it" lang="it">Italiano</a>' in html
    assert (
        '<a href="http://testserver/comparisons/consult-public/report?lang=sk">Úplná technická správa</a>'
        in html
    )
    assert "set-cookie" not in response.headers  # nothing is remembered unless the reader switches


def test_the_switcher_chooses_italian_and_the_cookie_remembers_it(client: TestClient) -> None:
    switched = client.get(PAGE, params={"lang": "it"}, headers={"Accept-Language": "sk"})
    assert '<html lang="it">' in switched.text and IT_CAR in switched.text
    assert "confronto consult-public del 30 novembre 2026" in switched.text
    assert (
        "lang=it; " in switched.headers["set-cookie"]
        and "Path=/consultations" in switched.headers["set-cookie"]
    )
    again = client.get(PAGE, headers={"Accept-Language": "sk"})  # the client keeps the cookie
    assert '<html lang="it">' in again.text
    client.cookies.clear()
    assert consult.CAR_WORDS in client.get(PAGE, params={"lang": "en"}).text


def test_near_me_answers_in_the_readers_language(client: TestClient) -> None:
    near = client.get(f"{PAGE}/near", params={"address": "Mannerheimintie 5", "lang": "sk"}).json()
    assert near["tables"][0]["sentence"] == (
        "2 v okruhu 300 m, z toho sa 2 menia nad rámec náhodného kolísania medzi behmi simulácie. "
        "Najväčšie zmeny: Mannerheimintie: 200 → 120 vozidiel (−80,0); e1: 100 → 140 vozidiel (+40,0)."
    )
    point = client.get(f"{PAGE}/near", params={"lon": 24.94, "lat": 60.17, "lang": "it"}).json()
    assert point["place"]["label"] == "punto 60,17000; 24,94000"
    page = client.get(PAGE, params={"address": "Mannerheimintie 5", "lang": "it"}).text
    assert "<strong>Nei pressi di: Mannerheimintie 5</strong> (piano zone30):" in page


def test_a_mistyped_address_is_explained_in_the_readers_language(client: TestClient) -> None:
    page = client.get(PAGE, params={"address": "Mannerheimintie 99", "lang": "sk"}).text
    assert "<p>adresa &#39;Mannerheimintie 99&#39; v tomto digitálnom dvojníkovi nie je</p>" in page
    client.cookies.clear()  # ?lang=sk was remembered; the browser's Italian decides once it is gone
    answer = client.get(
        f"{PAGE}/near", params={"address": "Mannerheimintie"}, headers={"Accept-Language": "it"}
    )
    assert answer.status_code == 400
    assert answer.json()["detail"] == "indica una via e un numero civico, es. 'Mannerheimintie 5'"
