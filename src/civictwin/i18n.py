"""The language people read: which locale, its translated messages and its numbers and dates.

One job: pick a locale (from a request's ``lang`` override, its cookie, its Accept-Language header,
or for the CLI from ``--lang`` and the ``LANGUAGE``/``LC_ALL``/``LC_MESSAGES``/``LANG`` variables) and
hand out a :class:`Language` with ``gettext``/``ngettext`` over the ``civictwin`` gettext catalogue
and Babel's locale-aware number, percent and date formatting. The catalogues are the ``.po`` files
under ``civictwin/locale/<code>/LC_MESSAGES/`` (docs/consultation.md#languages says how to update
them with ``pybabel``); each is compiled in memory the first time it is used, so a fresh clone and an
installed package need no separate compile step and can never serve a stale ``.mo``. Babel is
imported where it formats or compiles, not with this module: the engines import :func:`N_` at start-up,
which stays as fast as before (Babel takes about 60 ms to import).

Plural forms are gettext's, from each catalogue's ``Plural-Forms`` header (Slovak has three: 1,
2–4, 5 and more). Numbers shown with decimals take the form CLDR gives fractions, which gettext's
integer rules cannot: their messages are written once, in that form ("o 2,4 bodu menej").
"""

from __future__ import annotations

import datetime as dt
import gettext as gettext_module
import io
import os
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

DOMAIN = "civictwin"
"""The gettext domain: ``locale/<code>/LC_MESSAGES/civictwin.po``."""
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DEFAULT = "en"
"""The language of the source strings, and the one chosen when nothing else matches."""
LANGUAGES: dict[str, str] = {"en": "English", "sk": "Slovenčina", "it": "Italiano"}
"""Every language offered, by code, each named in itself (as the language switchers show it)."""
FORMAT_LOCALES: dict[str, str] = {"en": "en_GB", "sk": "sk_SK", "it": "it_IT"}
"""The CLDR locale each language formats numbers and dates with (English is British: "1 December
2026", as the viewer's en-GB; the viewer uses the same locales through Intl)."""
COOKIE = "lang"
"""The cookie (and query parameter) a page's language switcher sets."""

MINUS = "\u2212"
"""A true minus sign: clearer than a hyphen, and what screen readers read as "minus"."""


def N_(message: str) -> str:
    """Mark ``message`` for extraction into the catalogues without translating it here (it is
    translated where it is shown, e.g. a unit word kept as data)."""
    return message


@dataclass(frozen=True)
class Language:
    """One locale's messages and formats. ``code`` is one of :data:`LANGUAGES`."""

    code: str
    translations: gettext_module.NullTranslations

    def gettext(self, message: str) -> str:
        """``message`` in this language (itself when the catalogue lacks it)."""
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        """The form of a message for ``count`` things, by the language's plural rule."""
        return self.translations.ngettext(singular, plural, count)

    def decimal(self, value: float, *, decimals: int, grouped: bool = True) -> str:
        """``value`` with exactly ``decimals`` decimals and the locale's separators (``2.4`` → ``2,4``
        in sk and it); rounded half-even on the float's shortest repr, as Python's own format does."""
        from babel.numbers import format_decimal

        rounded = Decimal(f"{value:.{decimals}f}")
        pattern = ("#,##0" if grouped else "0") + ("." + "0" * decimals if decimals else "")
        return format_decimal(rounded, format=pattern, locale=FORMAT_LOCALES[self.code]).replace("-", MINUS)

    def percent(self, share: float, *, decimals: int = 1) -> str:
        """A share (``0.186``) in the locale's percent pattern: ``18.6%``, ``18,6 %`` (sk), ``18,6%`` (it)."""
        from babel import Locale
        from babel.numbers import parse_pattern

        locale = Locale.parse(FORMAT_LOCALES[self.code])
        pattern = parse_pattern(locale.percent_formats[None].pattern)
        pattern.frac_prec = (decimals, decimals)
        rounded = Decimal(f"{share * 100:.{decimals}f}") / 100
        text: str = pattern.apply(rounded, locale)
        return text.replace("-", MINUS)

    def date(self, value: dt.date | str) -> str:
        """A day in the locale's long form: ``1 December 2026``, ``1. decembra 2026``, ``1 dicembre 2026``;
        an ISO text (``2026-12-01T09:00:00Z``) is read by its first ten characters."""
        from babel.dates import format_date

        day = dt.date.fromisoformat(value[:10]) if isinstance(value, str) else value
        return format_date(day, format="long", locale=FORMAT_LOCALES[self.code])


@lru_cache(maxsize=len(LANGUAGES))
def language(code: str) -> Language:
    """The :class:`Language` for ``code`` (one of :data:`LANGUAGES`; anything else is the default)."""
    if code not in LANGUAGES:
        code = DEFAULT
    if code == DEFAULT:
        return Language(code, gettext_module.NullTranslations())
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with (LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        catalog = read_po(po, locale=code, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Language(code, gettext_module.GNUTranslations(buffer))


def negotiate(accept_language: str | None) -> str:
    """The offered language the browser prefers most (RFC 9110 Accept-Language, ``q`` weights, a
    region matching its language: ``sk-SK`` → ``sk``); the default when none is offered."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if tag and weight > 0:
            ranked.append((-weight, position, tag.strip()))
    for _, _, tag in sorted(ranked):
        code = _offered(tag)
        if code is not None:
            return code
    return DEFAULT


def choose(*, override: str | None, cookie: str | None, accept_language: str | None) -> str:
    """A page's language: the switcher's choice (its ``lang`` parameter, then its cookie) when it names
    an offered language, else the browser's preference."""
    for choice in (override, cookie):
        code = _offered(choice or "")
        if code is not None:
            return code
    return negotiate(accept_language)


def from_environment(lang: str | None = None, environ: dict[str, str] | None = None) -> str:
    """The CLI's language: ``--lang`` when given, else the first of ``LANGUAGE`` (a colon-separated
    list), ``LC_ALL``, ``LC_MESSAGES``, ``LANG`` that names an offered language (``sk_SK.UTF-8`` → sk)."""
    if lang:
        return _offered(lang) or DEFAULT
    env = os.environ if environ is None else environ
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        for tag in env.get(name, "").split(":"):
            code = _offered(tag.split(".")[0])
            if code is not None:
                return code
    return DEFAULT


def _offered(tag: str) -> str | None:
    """The offered language of a tag (``sk``, ``sk-SK``, ``it_IT``), None when none."""
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    return primary if primary in LANGUAGES else None
