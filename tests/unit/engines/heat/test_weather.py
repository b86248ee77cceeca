"""Reading the EPW and picking its hottest day; bad files are one line naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from civictwin.engines.heat.weather import read_hot_day
from civictwin.errors import EngineError

SHARED_EPW = (
    Path(__file__).resolve().parents[4].parent
    / "shared"
    / "data"
    / "weather"
    / "FIN_Helsinki.029740_IWEC.epw"
)


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_EPW.is_file(), reason="../shared/data/weather is absent")
def test_the_hottest_day_of_helsinkis_typical_year() -> None:
    day = read_hot_day(SHARED_EPW)
    # IWEC Helsinki: the year's maximum hourly temperature, 28.7 °C, falls on 2 August
    assert day.date == "08-02" and day.max_temp_c == pytest.approx(28.7)
    assert len(day.times) == 24 and day.utc_offset_h == 2.0
    assert (day.latitude, day.longitude) == (60.32, 24.97)
    assert day.times[0].hour == 1  # the first row is the hour ending at 01:00
    assert day.hours(9, 18) == list(range(9, 19))


def test_a_missing_weather_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as err:
        read_hot_day(tmp_path / "none.epw")
    assert err.value.user_message() == f"{tmp_path / 'none.epw'}: weather file not found"


def test_a_file_that_is_no_epw_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.epw"
    path.write_text("this is not a weather file\n")
    with pytest.raises(EngineError, match=r"bad\.epw: not a readable EPW weather file"):
        read_hot_day(path)


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_EPW.is_file(), reason="../shared/data/weather is absent")
def test_a_missing_value_in_the_data_is_named_by_row_and_field(tmp_path: Path) -> None:
    lines = SHARED_EPW.read_text(encoding="latin-1").splitlines()
    fields = lines[8 + 4].split(",")
    fields[6] = "99.9"  # EPW's missing-value code for dry-bulb temperature
    lines[8 + 4] = ",".join(fields)
    path = tmp_path / "gap.epw"
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
    with pytest.raises(EngineError) as err:
        read_hot_day(path)
    assert err.value.user_message() == f"{path}: data row 5: temp_air = 99.9 is missing or outside -70..70"
