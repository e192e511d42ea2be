"""The road-network distance matrix (OSRM `/table`), against a fake OSRM server."""

from __future__ import annotations

import httpx
import pytest

from dispatch import routing
from dispatch.distances import OsrmMatrix, distance_matrix_for

POINTS = [(31.2304, 121.4737), (31.2404, 121.4837)]


def osrm(handler) -> OsrmMatrix:
    return OsrmMatrix("http://osrm.test/", client=httpx.Client(transport=httpx.MockTransport(handler)))


def test_asks_osrm_with_lon_lat_and_uses_its_road_distances():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["url"] = str(request.url)
        return httpx.Response(200, json={"code": "Ok", "distances": [[0, 2100.4], [1980.6, 0]]})

    matrix = osrm(handler)(POINTS)
    assert seen["url"].startswith("http://osrm.test/table/v1/driving/121.473700,31.230400;121.483700,31.240400")
    assert "annotations=distance" in seen["url"]
    assert matrix.tolist() == [[0, 2100], [1981, 0]]  # asymmetric roads kept as they are


def test_unreachable_pairs_fall_back_to_the_straight_line():
    matrix = osrm(lambda _: httpx.Response(200, json={"code": "Ok", "distances": [[0, None], [1500, 0]]}))(POINTS)
    assert matrix[0, 1] == routing.haversine_matrix(POINTS)[0, 1] and matrix[1, 0] == 1500


def test_an_osrm_error_is_not_silently_ignored():
    with pytest.raises(RuntimeError, match="NoTable"):
        osrm(lambda _: httpx.Response(200, json={"code": "NoTable", "message": "bad coordinates"}))(POINTS)


def test_haversine_unless_configured():
    assert distance_matrix_for(None) is routing.haversine_matrix
    assert isinstance(distance_matrix_for("http://osrm:5000"), OsrmMatrix)
