"""The edge agent: device readings -> durable SQLite outbox -> central MQTT broker."""
