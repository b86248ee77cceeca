"""The city model derived from the stored sources: the routable network, buildings, zones with
population and jobs, terrain, transit, signals, and traffic counts matched to the network. Pure
functions of stored data, recorded in lineage."""
