"""The NetZero buildings engine: hourly heating, cooling and hot-water need (ISO 13790 5R1C),
final energy by carrier, CO2, peak load and rooftop PV for every building (docs/methods-energy.md)."""
