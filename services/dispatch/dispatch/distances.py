"""Road-network distances from an OSRM server (`/table` service), for when great-circle
distances are too optimistic (rivers, walls, one-way gates). Used by `POST /runs/plan`
when DISPATCH_OSRM_URL is set; haversine otherwise."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np

from dispatch.routing import Point, haversine_matrix


class OsrmMatrix:
    def __init__(
        self, base_url: str, profile: str = "driving", timeout_s: float = 10.0, client: httpx.Client | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.profile = profile
        self.client = client or httpx.Client(timeout=timeout_s)

    def __call__(self, points: Sequence[Point]) -> np.ndarray:
        coordinates = ";".join(f"{lon:.6f},{lat:.6f}" for lat, lon in points)
        url = f"{self.base_url}/table/v1/{self.profile}/{coordinates}"
        response = self.client.get(url, params={"annotations": "distance"})
        response.raise_for_status()
        body = response.json()
        if body.get("code") != "Ok":
            raise RuntimeError(f"OSRM table failed: {body.get('code')} {body.get('message', '')}")
        table = np.array(body["distances"], dtype=float)
        # OSRM answers null where no road connects: fall back to the straight line there.
        missing = np.isnan(table)
        if missing.any():
            table[missing] = haversine_matrix(points)[missing]
        return np.rint(table).astype(np.int64)


def distance_matrix_for(osrm_url: str | None, profile: str = "driving", timeout_s: float = 10.0):
    return OsrmMatrix(osrm_url, profile, timeout_s) if osrm_url else haversine_matrix
