"""Material from the field (street surveys, the viewer's survey form): photos made safe, observations checked."""
