"""``machi alerts``: care and device alerts that reach a person (routing, delivery,
acknowledgement, escalation). See docs/alerts.md."""
