"""The demo city: districts, bus routes with a GTFS feed, and its device fleet.

Use from the demo::

    from machi.democity import build_fleet, write_city_gtfs, backfill, fetch_kpis, format_kpis
    write_city_gtfs(".machi/demo/gtfs.zip")     # then: machi events run --gtfs that.zip
    fleet = build_fleet()                        # a machi.simulate.Fleet
    backfill(settings, fleet, hours=2)           # history through MQTT, oldest first
    run_simulation(settings, fleet, ...)         # then live, as usual
    print(format_kpis(fetch_kpis(api_url, key)))
"""

from machi.democity.city import ROUTES, gtfs_tables, write_city_gtfs
from machi.democity.fleet import GtfsBus, build_fleet
from machi.democity.run import backfill, fetch_kpis, format_kpis

__all__ = [
    "ROUTES",
    "GtfsBus",
    "backfill",
    "build_fleet",
    "fetch_kpis",
    "format_kpis",
    "gtfs_tables",
    "write_city_gtfs",
]
