"""The residents' view (見える化): public bilingual page, open data, DCAT catalog, feedback.

A rendering and aggregation library served by ``machi api`` (api/routes/public.py). It
imports only ``contract`` (and its own third-party libraries): the API hands it a
``compute(theme, start, end, site)`` callable backed by its KPI engine.
"""
