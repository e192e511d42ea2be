"""Delivery runs as a capacitated vehicle routing problem with time windows (CVRPTW),
solved with OR-Tools. Pure: values in, a plan out (no database, no clock reads).

Every run starts and ends at the depot. Distances come from a `DistanceMatrix`: haversine
(great-circle) by default, or a road-network service (see `distances.py`). Times are
seconds from the start of the slot.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from dispatch.domain import EARTH_RADIUS_M

Point = tuple[float, float]  # (lat, lon)


class DistanceMatrix(Protocol):
    def __call__(self, points: Sequence[Point]) -> np.ndarray:
        """Metres from every point to every point (square, integer)."""
        ...


def haversine_matrix(points: Sequence[Point]) -> np.ndarray:
    coords = np.radians(np.asarray(points, dtype=float).reshape(-1, 2))
    lat, lon = coords[:, 0][:, None], coords[:, 1][:, None]
    dlat, dlon = lat.T - lat, lon.T - lon
    a = np.sin(dlat / 2) ** 2 + np.cos(lat) * np.cos(lat.T) * np.sin(dlon / 2) ** 2
    return np.rint(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))).astype(np.int64)


@dataclass(frozen=True)
class Stop:
    key: str  # the request id
    lat: float
    lon: float
    earliest_s: int = 0
    latest_s: int | None = None  # None: the end of the slot
    demand: int = 1
    service_s: int = 300
    weight: int = 1  # priority: the higher, the costlier to leave out


@dataclass(frozen=True)
class Vehicle:
    key: str  # the volunteer id
    capacity: int
    start_s: int = 0
    end_s: int | None = None


@dataclass
class Route:
    vehicle: str
    stops: list[str]
    arrivals_s: list[int]
    distance_m: int
    return_s: int


@dataclass
class Plan:
    routes: list[Route] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def distance_m(self) -> int:
        return sum(r.distance_m for r in self.routes)


@dataclass(frozen=True)
class Problem:
    depot: Point
    stops: Sequence[Stop]
    vehicles: Sequence[Vehicle]
    horizon_s: int
    speed_mps: float = 4.0  # an e-bike in a residential compound, ~14 km/h
    distances: np.ndarray | None = None  # (1 + stops)²; computed by haversine when absent

    def matrix(self, distance: DistanceMatrix = haversine_matrix) -> np.ndarray:
        if self.distances is not None:
            return self.distances
        return distance([self.depot, *((s.lat, s.lon) for s in self.stops)])


DROP_PENALTY_M = 1_000_000  # per unit of weight: drop a stop only when it cannot be served


def solve(
    problem: Problem,
    *,
    time_limit_s: float = 4.0,
    distance: DistanceMatrix = haversine_matrix,
    first_solution: str = "SAVINGS",  # best in 4 s on our bench (docs/performance.md)
    metaheuristic: str = "GUIDED_LOCAL_SEARCH",
) -> Plan:
    """Plan the runs: every vehicle leaves the depot and comes back, visits at most its
    capacity, arrives in each stop's window; stops that cannot fit are returned as dropped."""
    stops, vehicles = list(problem.stops), list(problem.vehicles)
    if not stops or not vehicles:
        return Plan(dropped=[s.key for s in stops])
    dist = problem.matrix(distance)
    n = len(stops) + 1
    if dist.shape != (n, n):
        raise ValueError(f"distance matrix is {dist.shape}, expected {(n, n)}")
    travel = np.ceil(dist / problem.speed_mps).astype(np.int64)
    service = np.array([0, *(s.service_s for s in stops)], dtype=np.int64)
    time = travel + service[:, None]  # leaving i for j takes the service at i, then the ride

    manager = pywrapcp.RoutingIndexManager(n, len(vehicles), 0)
    routing = pywrapcp.RoutingModel(manager)
    dist_cb = routing.RegisterTransitMatrix(dist.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(dist_cb)
    time_cb = routing.RegisterTransitMatrix(time.tolist())
    routing.AddDimension(time_cb, problem.horizon_s, problem.horizon_s, False, "time")
    time_dim = routing.GetDimensionOrDie("time")
    demand_cb = routing.RegisterUnaryTransitVector([0, *(s.demand for s in stops)])
    routing.AddDimensionWithVehicleCapacity(demand_cb, 0, [v.capacity for v in vehicles], True, "load")

    for i, stop in enumerate(stops, start=1):
        index = manager.NodeToIndex(i)
        latest = problem.horizon_s if stop.latest_s is None else min(stop.latest_s, problem.horizon_s)
        time_dim.CumulVar(index).SetRange(max(0, stop.earliest_s), max(latest, max(0, stop.earliest_s)))
        routing.AddDisjunction([index], DROP_PENALTY_M * max(1, stop.weight))
    for v, vehicle in enumerate(vehicles):
        end = problem.horizon_s if vehicle.end_s is None else min(vehicle.end_s, problem.horizon_s)
        time_dim.CumulVar(routing.Start(v)).SetRange(vehicle.start_s, end)
        time_dim.CumulVar(routing.End(v)).SetRange(vehicle.start_s, end)
        routing.AddVariableMinimizedByFinalizer(time_dim.CumulVar(routing.Start(v)))
        routing.AddVariableMinimizedByFinalizer(time_dim.CumulVar(routing.End(v)))

    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = getattr(routing_enums_pb2.FirstSolutionStrategy, first_solution)
    params.local_search_metaheuristic = getattr(routing_enums_pb2.LocalSearchMetaheuristic, metaheuristic)
    params.time_limit.FromMilliseconds(max(1, int(time_limit_s * 1000)))
    solution = routing.SolveWithParameters(params)
    if solution is None:
        return Plan(dropped=[s.key for s in stops])

    plan = Plan()
    served: set[int] = set()
    for v, vehicle in enumerate(vehicles):
        index = routing.Start(v)
        keys, arrivals, metres = [], [], 0
        while not routing.IsEnd(index):
            nxt = solution.Value(routing.NextVar(index))
            metres += int(dist[manager.IndexToNode(index), manager.IndexToNode(nxt)])
            if not routing.IsEnd(nxt):
                node = manager.IndexToNode(nxt)
                served.add(node)
                keys.append(stops[node - 1].key)
                arrivals.append(int(solution.Min(time_dim.CumulVar(nxt))))
            index = nxt
        if keys:
            plan.routes.append(Route(vehicle.key, keys, arrivals, metres, int(solution.Min(time_dim.CumulVar(index)))))
    plan.dropped = [s.key for i, s in enumerate(stops, start=1) if i not in served]
    return plan


@dataclass(frozen=True)
class Unplanned:
    """Why a stop is in no run: a reason code and the figures behind it."""

    key: str
    reason: str  # one of UNPLANNED_REASONS
    detail: str
    distance_m: int | None = None  # from the depot
    needed_s: int | None = None  # what serving it alone would take
    available_s: int | None = None  # what the slot or the stop's window allows


UNPLANNED_REASONS = ("no_volunteer", "out_of_reach", "too_late", "capacity", "no_room", "taken")


def why_unplanned(problem: Problem, dropped: Sequence[str], distances: np.ndarray | None = None) -> list[Unplanned]:
    """A reason for each dropped stop, tested on that stop alone, as one volunteer leaving
    the depot at the slot's start would serve it: nobody to send; the round trip longer than
    the slot; the stop's window or deadline over before anyone can arrive; then, when the
    stop is reachable alone, not enough places in the runs or no room left among the others."""
    dist = problem.matrix() if distances is None else distances
    position = {s.key: i for i, s in enumerate(problem.stops, start=1)}
    capacity = sum(v.capacity for v in problem.vehicles)
    longest = max(
        (
            (problem.horizon_s if v.end_s is None else min(v.end_s, problem.horizon_s)) - v.start_s
            for v in problem.vehicles
        ),
        default=0,
    )
    reasons = []
    for key in dropped:
        i = position[key]
        stop = problem.stops[i - 1]
        out, back = int(dist[0, i]), int(dist[i, 0])
        ride_out = math.ceil(out / problem.speed_mps)
        arrival = max(ride_out, stop.earliest_s)
        round_trip = arrival + stop.service_s + math.ceil(back / problem.speed_mps)
        latest = problem.horizon_s if stop.latest_s is None else min(stop.latest_s, problem.horizon_s)
        if not problem.vehicles:
            reasons.append(Unplanned(key, "no_volunteer", "no errand volunteer is available in the slot", out))
        elif ride_out > latest:
            reasons.append(
                Unplanned(
                    key,
                    "too_late",
                    f"the ride from the depot takes {ride_out // 60} min; it must be reached within "
                    f"{latest // 60} min of the slot's start",
                    out,
                    ride_out,
                    latest,
                )
            )
        elif round_trip > longest:
            reasons.append(
                Unplanned(
                    key,
                    "out_of_reach",
                    f"{out / 1000:.1f} km from the depot: the round trip takes {round_trip // 60} min, "
                    f"the slot has {longest // 60} min",
                    out,
                    round_trip,
                    longest,
                )
            )
        elif capacity < len(problem.stops):
            reasons.append(
                Unplanned(
                    key,
                    "capacity",
                    f"the runs hold {capacity} deliveries and {len(problem.stops)} were due; higher priorities went first",
                    out,
                )
            )
        else:
            reasons.append(
                Unplanned(key, "no_room", "reachable alone, but no run had time left for it among the others", out)
            )
    return reasons


def arrival_order(problem: Problem, *, distance: DistanceMatrix = haversine_matrix) -> Plan:
    """The baseline: requests served in the order they arrived, each volunteer taking the
    next ones up to capacity, each run in arrival order from the depot and back."""
    dist = problem.matrix(distance)
    plan, position = Plan(), 0
    stops = list(problem.stops)
    for vehicle in problem.vehicles:
        chunk = list(range(position + 1, min(position + vehicle.capacity, len(stops)) + 1))
        position += len(chunk)
        if not chunk:
            break
        path = [0, *chunk, 0]
        metres = int(sum(dist[a, b] for a, b in itertools.pairwise(path)))
        plan.routes.append(Route(vehicle.key, [stops[i - 1].key for i in chunk], [], metres, 0))
    plan.dropped = [s.key for s in stops[position:]]
    return plan
