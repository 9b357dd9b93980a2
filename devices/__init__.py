"""Device identities: a registry of credentials and the Mosquitto files derived from it.

``machi devices add|list|revoke|rotate|export`` manage the registry; ``export`` writes
Mosquitto's password file and ACL file so each identity can touch only its own topics.
See docs/security.md for the design and its limits.
"""
