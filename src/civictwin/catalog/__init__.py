"""The twin's governance records: catalogue (DCAT-AP style), lineage (PROV style) and data quality.

Every table in the twin gets a ``catalog/<table>``, ``lineage/<table>`` and ``quality/<table>`` record
in the store, so every number a report shows can be traced back to its inputs, their licences and
their quality. :mod:`civictwin.catalog.report` renders them as JSON-LD and as HTML pages.
"""
