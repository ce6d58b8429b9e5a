"""Foyer sends Graph only zone names Graph takes: each IANA zone an organizer can pick becomes its Windows
name through CLDR's windowsZones mapping (tzlocal's copy), checked against Microsoft's published list."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from app.services.core.timezones import all_zones
from app.services.microsoft.graph import EventDetails, windows_zone
from emulator.graph_facts import SPECS
from emulator.timezones import graph_accepts_zone, resolve_zone


def test_every_zone_foyer_offers_maps_to_a_zone_graph_accepts():
    refused = sorted(zone for zone in all_zones() if not graph_accepts_zone(windows_zone(zone)))
    assert refused == []


def test_every_zone_foyer_offers_keeps_its_instants_exact_at_graph():
    """Graph reads the wall time by the Windows zone's rules; for every zone, winter and summer, the time Foyer
    writes must read back as the same instant."""
    wrong = []
    for zone in sorted(all_zones()):
        for moment in (datetime(2027, 1, 15, 12, tzinfo=UTC), datetime(2027, 7, 15, 12, tzinfo=UTC)):
            sent = EventDetails(subject="x", body_html="", start=moment, end=moment + timedelta(hours=1),
                                timezone=zone).as_graph(with_body=False)["start"]
            read = datetime.fromisoformat(sent["dateTime"]).replace(tzinfo=resolve_zone(sent["timeZone"]))
            if read.astimezone(UTC) != moment:
                wrong.append((zone, sent))
    assert wrong == []


def test_cldr_mapping_agrees_with_graphs_published_iana_list():
    facts = json.loads((SPECS / "graph-timezones.json").read_text())
    for iana in facts["iana_accepted"]:
        assert graph_accepts_zone(windows_zone(iana)), iana


@pytest.mark.parametrize(("zone", "windows"), [
    ("Europe/Amsterdam", "W. Europe Standard Time"), ("Europe/Madrid", "Romance Standard Time"),
    ("Europe/Dublin", "GMT Standard Time"), ("America/Toronto", "Eastern Standard Time"), ("UTC", "UTC"),
    ("Europe/Stockholm", "W. Europe Standard Time"), ("Europe/Rome", "W. Europe Standard Time"),
])
def test_zones_graph_refuses_by_iana_name_are_sent_by_windows_name(zone, windows):
    assert not graph_accepts_zone(zone) or zone in ("UTC",)
    start = datetime(2027, 7, 1, 16, 0, tzinfo=UTC)
    sent = EventDetails(subject="x", body_html="", start=start, end=start + timedelta(hours=1),
                        timezone=zone).as_graph(with_body=False)
    assert sent["start"]["timeZone"] == sent["end"]["timeZone"] == windows
    local = datetime.fromisoformat(sent["start"]["dateTime"]).replace(tzinfo=resolve_zone(windows))
    assert local.astimezone(UTC) == start
    assert "body" not in sent
