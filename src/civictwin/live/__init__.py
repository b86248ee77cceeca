"""Live data: the MQTT consumer, the rules that watch observations and scenario results, alerts and
their delivery (log, webhooks, viewer), and a Mosquitto broker for tests and the demo."""
