"""The ``?``-placeholder statements of the PostGIS sidecar stores: which ``?`` and ``%`` psycopg sees,
by hand, and the translated statements run on a real PostgreSQL."""

from __future__ import annotations

import pytest

from civictwin.store.postgis import connect
from civictwin.store.postgis_sidecar import PostgresConnection, _placeholders

MIXED = (
    "SELECT '?' || ?, 'it''s 100%' || ?, E'\\'?%', \"odd?%\".x, $$?%$$, $f$?$f$ "
    "-- a comment with ? and %\n"
    'FROM t "odd?%" /* ? % */ WHERE d::jsonb ?? ? AND d::jsonb ??| ? AND n % 2 = ?'
)


@pytest.mark.parametrize(
    ("statement", "translated"),
    [
        ("SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = %s AND c = %s"),
        ("SELECT '?', '%'", "SELECT '?', '%%'"),
        ("SELECT 'a''?' || ?", "SELECT 'a''?' || %s"),
        ("SELECT 5 % ?", "SELECT 5 %% %s"),
        ("SELECT WHERE'?' = ?", "SELECT WHERE'?' = %s"),  # not an E'' string: WHERE ends in E
        (
            MIXED,
            "SELECT '?' || %s, 'it''s 100%%' || %s, E'\\'?%%', \"odd?%%\".x, $$?%%$$, $f$?$f$ "
            "-- a comment with ? and %%\n"
            'FROM t "odd?%%" /* ? %% */ WHERE d::jsonb ? %s AND d::jsonb ?| %s AND n %% 2 = %s',
        ),
    ],
)
def test_only_placeholders_become_percent_s_and_every_percent_is_doubled(
    statement: str, translated: str
) -> None:
    assert _placeholders(statement) == translated


def test_literal_question_marks_percents_and_the_jsonb_operator_run_on_postgresql(postgis_url: str) -> None:
    raw = connect(postgis_url)
    try:
        con = PostgresConnection(raw)
        row = con.execute(
            "SELECT '?' || ?, 'it''s 100%' || ?, '{\"a\": 1}'::jsonb ?? ?, '{\"a\": 1}'::jsonb ?? ? "
            "-- ? and % in a comment\n",
            ["x", "!", "a", "b"],
        ).fetchone()
        assert row == ("?x", "it's 100%!", True, False)
        con.execute("CREATE TABLE t (k text, n bigint)")
        con.executemany("INSERT INTO t VALUES (? || '%?', ?)", [("a", 1), ("b", 4)])
        assert con.execute("SELECT k FROM t WHERE n % 2 = ? ORDER BY k", [0]).fetchall() == [("b%?",)]
    finally:
        raw.close()
