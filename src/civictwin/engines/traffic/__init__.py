"""The traffic engine on Eclipse SUMO: network build, demand, mode choice, runs and output parsing."""
