"""The heat and green engine: where a hot day hurts, and how much greening helps.

Rasters of the twin (:mod:`.rasters`), the InVEST Urban Cooling model (:mod:`.cooling`), SOLWEIG and
UTCI at street level (:mod:`.comfort`), green access on the walk network (:mod:`.access`), greening
interventions (:mod:`.interventions`) and one seed's indicators (:mod:`.model`, :mod:`.run`).
Method and sources: docs/methods-heat.md.
"""
