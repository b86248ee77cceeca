"""Scenarios as data: TOML files of interventions, their selections, and applying them to the network."""
