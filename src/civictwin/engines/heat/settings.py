"""The heat engine's settings: ``heat.toml`` beside ``twin.toml`` (optional), plus command-line overrides.

```toml
epw = "../shared/data/weather/FIN_Helsinki.029740_IWEC.epw"   # relative to the twin folder
cell_m = 2.0            # grid resolution (m)
first_hour = 9          # local standard time, the hours of the hottest day simulated
last_hour = 18
stress_class = "strong" # UTCI class counted: moderate | strong | very_strong | extreme
sample_assumed_ranges = false  # seeds also draw the parameters whose ranges are assumptions
```

Every key is optional; without ``epw`` the engine takes the weather file of ``[energy].weather`` in
``twin.toml``. Problems are one ConfigError line naming the file and key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from civictwin.errors import ConfigError

SETTINGS_FILE = "heat.toml"


class HeatSettings(BaseModel):
    """What shapes a heat run besides the scenario (docs/methods-heat.md).

    ``cell_m`` grid resolution (m); ``first_hour``..``last_hour`` the local hours of the hottest day
    simulated; ``stress_class`` the UTCI class whose exposure is counted (with every hotter one);
    ``block_cells`` cells per side of the map blocks of the ``cells`` table; tree defaults for OSM trees.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epw: str | None = None
    cell_m: Annotated[float, Field(ge=0.5, le=50)] = 2.0
    first_hour: Annotated[int, Field(ge=0, le=23)] = 9
    last_hour: Annotated[int, Field(ge=0, le=23)] = 18
    stress_class: Literal["moderate", "strong", "very_strong", "extreme"] = "strong"
    block_cells: Annotated[int, Field(ge=1, le=1000)] = 10
    tree_crown_radius_m: Annotated[float, Field(gt=0, le=15)] = 3.0
    tree_height_m: Annotated[float, Field(ge=2, le=40)] = 10.0
    sample_assumed_ranges: bool = False

    @model_validator(mode="after")
    def _hours_in_order(self) -> HeatSettings:
        if self.last_hour < self.first_hour:
            raise ValueError("last_hour must not be before first_hour")
        return self

    def epw_path(self, twin_dir: Path) -> Path:
        """The weather file, resolved against the twin folder (ConfigError when none is set)."""
        if not self.epw:
            raise ConfigError(
                "epw: no weather file given (an EPW of a typical year; see docs/methods-heat.md)",
                path=twin_dir / SETTINGS_FILE,
            )
        path = Path(self.epw)
        return path if path.is_absolute() else twin_dir / path


def load_settings(twin_dir: Path, overrides: Mapping[str, Any] | None = None) -> HeatSettings:
    """``heat.toml`` in ``twin_dir`` (defaults when absent) with ``overrides`` on top."""
    path = twin_dir / SETTINGS_FILE
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    try:
        return HeatSettings.model_validate({**data, **dict(overrides or {})})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(part) for part in err["loc"]) or "heat"
        message = (
            "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        )
        raise ConfigError(message, path=path, field=key) from None
