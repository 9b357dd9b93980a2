"""Device protocols: bytes from field devices -> contract readings.

One sub-package per protocol (``echonet_broute``, ``modbus_sdm``, ``nmea_gps``,
``ble_gateway``), each with its decoder, driver, simulator, sample config and tests.
"""
