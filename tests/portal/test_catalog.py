"""The DCAT catalog parses as JSON-LD (rdflib), has the shape CKAN's DCAT harvester
reads, and every distribution it lists downloads and parses."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from rdflib import RDF, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, FOAF

from contract.influx import InfluxV1
from contract.settings import Settings
from portal.opendata import columns
from portal.strings import THEMES_PUBLIC
from tests.portal.conftest import PUBLIC, make_client, portal_options, wait_ready

pytestmark = pytest.mark.integration

DCAT = Namespace("http://www.w3.org/ns/dcat#")
CC_BY = URIRef("https://creativecommons.org/licenses/by/4.0/")


def test_catalog_shape_and_every_download(portal_client: TestClient) -> None:
    r = portal_client.get("/open-data/catalog.jsonld")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/ld+json")
    g = Graph().parse(data=r.text, format="json-ld")
    catalogs = list(g.subjects(RDF.type, DCAT.Catalog))
    assert len(catalogs) == 1
    datasets = set(g.objects(catalogs[0], DCAT.dataset))
    assert datasets == set(g.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) == len(THEMES_PUBLIC) + 1  # a dataset per theme + GTFS-RT
    idents = {str(g.value(d, DCTERMS.identifier)) for d in datasets}
    assert idents == {f"machi-{t}-aggregates" for t in THEMES_PUBLIC} | {
        "machi-gtfs-rt-vehicle-positions"
    }
    dictionary = list(
        csv.DictReader(io.StringIO(portal_client.get("/open-data/dictionary.csv").text))
    )
    documented = {(row["dataset"], row["key"]) for row in dictionary}
    assert all(row["label_ja"] and row["label_en"] for row in dictionary)
    downloads = 0
    for d in datasets:
        assert g.value(d, DCTERMS.license) == CC_BY
        titles = {t.language: str(t) for t in g.objects(d, DCTERMS.title) if isinstance(t, Literal)}
        assert set(titles) == {"ja", "en"} and all(titles.values())
        assert isinstance(g.value(d, DCTERMS.modified), Literal)
        publisher = g.value(d, DCTERMS.publisher)
        assert publisher is not None and g.value(publisher, FOAF.name) is not None
        dists = list(g.objects(d, DCAT.distribution))
        assert dists
        for dist in dists:
            assert (dist, RDF.type, DCAT.Distribution) in g
            assert g.value(dist, DCTERMS.license) == CC_BY
            media = str(g.value(dist, DCAT.mediaType))
            assert media.startswith("http://www.iana.org/assignments/media-types/")
            url = str(g.value(dist, DCAT.downloadURL))
            path = urlsplit(url).path
            headers = {"Authorization": f"Bearer {PUBLIC}"} if path.startswith("/v1/") else {}
            got = portal_client.get(path, headers=headers)
            assert got.status_code == 200, url
            downloads += 1
            if media.endswith("text/csv"):
                rows = list(csv.DictReader(io.StringIO(got.content.decode("utf-8"))))
                assert rows, url
                name = path.rsplit("/", 1)[1]
                if name != "dictionary.csv":
                    theme = name.split("-")[0]
                    assert list(rows[0]) == columns(theme)
                    for key in rows[0]:
                        assert ("*", key) in documented or (theme, key) in documented, key
            elif media.endswith("application/json"):
                assert json.loads(got.content)["rows"]
            else:
                assert media.endswith("application/x-protobuf")
                assert got.headers["content-type"].startswith("application/x-protobuf")
    assert downloads == len(THEMES_PUBLIC) * 5 + 1


def test_catalog_uses_the_configured_base_url(
    settings: Settings, city: InfluxV1, tmp_path: Path
) -> None:
    opts = portal_options(tmp_path, portal_base_url="https://mieruka.example.jp")
    with make_client(settings, tmp_path, opts) as c:
        wait_ready(c)
        g = Graph().parse(data=c.get("/open-data/catalog.jsonld").text, format="json-ld")
    urls = {str(o) for o in g.objects(None, DCAT.downloadURL)}
    assert urls and all(u.startswith("https://mieruka.example.jp/") for u in urls)
