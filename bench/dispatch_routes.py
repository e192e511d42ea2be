"""Route quality and planning time of dispatch's delivery runs (OR-Tools CVRPTW).

For each size: a synthetic community (stops scattered over ~3 x 3 km around the depot,
a third of them with a 2-hour wished window), one volunteer per 20 stops, capacity with
20% slack, a 4-hour slot. Prints, per size, the planning time with the service's default
search limit, the total distance, the ratio against serving requests in arrival order
(the baseline, measured in the same run) and, for the target size, the gap to the same
solver given a long search (the best of two first-solution strategies, each searched for
--reference-s seconds).

    .venv/bin/python bench/dispatch_routes.py                      # 50, 200, 300, 500 stops; 60 s reference at 300
    .venv/bin/python bench/dispatch_routes.py --sizes 300 --reference-s 60 --seeds 3
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

from dispatch import routing
from dispatch.settings import DispatchSettings

DEPOT = (31.2304, 121.4737)
SLOT_S = 4 * 3600


def community(n: int, seed: int) -> tuple[list[routing.Stop], list[routing.Vehicle]]:
    rng = random.Random(seed)
    # Buildings cluster: residents of one building share coordinates (give or take a unit).
    buildings = [
        (DEPOT[0] + rng.uniform(-0.0135, 0.0135), DEPOT[1] + rng.uniform(-0.016, 0.016)) for _ in range(max(5, n // 6))
    ]
    stops = []
    for i in range(n):
        lat, lon = rng.choice(buildings)
        lat, lon = lat + rng.gauss(0, 0.0002), lon + rng.gauss(0, 0.0002)
        if rng.random() < 1 / 3:
            start = rng.randrange(0, SLOT_S - 7200, 900)
            stops.append(routing.Stop(f"RQ-{i}", lat, lon, earliest_s=start, latest_s=start + 7200, weight=2))
        else:
            stops.append(routing.Stop(f"RQ-{i}", lat, lon, weight=2))
    vehicles_n = max(1, round(n / 20))
    capacity = math.ceil(n / vehicles_n * 1.2)
    return stops, [routing.Vehicle(f"V-{v}", capacity) for v in range(vehicles_n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 300, 500])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--limit-s", type=float, default=DispatchSettings().plan_time_limit_s)
    parser.add_argument("--reference-s", type=float, default=60.0, help="long search for the quality gap (0: skip)")
    parser.add_argument("--reference-sizes", type=int, nargs="*", default=[300])
    parser.add_argument(
        "--reference-strategies",
        nargs="+",
        default=["SAVINGS", "PARALLEL_CHEAPEST_INSERTION"],
        help="first-solution strategies given the long search; the best is the reference",
    )
    args = parser.parse_args()
    speed = DispatchSettings().speed_kmh / 3.6
    print(f"OR-Tools CVRPTW, search limit {args.limit_s:g} s, {speed * 3.6:g} km/h, 5 min per stop, 4 h slot")
    print(
        f"{'stops':>5} {'vols':>4} {'seed':>4} {'plan s':>7} {'km':>7} {'arrival km':>10} {'vs arrival':>10} {'dropped':>7} {'ref km':>7} {'gap':>6}"
    )
    for n in args.sizes:
        ratios, times = [], []
        for seed in range(args.seeds):
            stops, vehicles = community(n, seed)
            started = time.perf_counter()
            problem = routing.Problem(DEPOT, stops, vehicles, SLOT_S, speed_mps=speed)
            plan = routing.solve(problem, time_limit_s=args.limit_s)  # includes the distance matrix
            elapsed = time.perf_counter() - started
            fixed = routing.Problem(DEPOT, stops, vehicles, SLOT_S, speed_mps=speed, distances=problem.matrix())
            baseline = routing.arrival_order(fixed)
            ratio = 1 - plan.distance_m / baseline.distance_m
            ratios.append(ratio)
            times.append(elapsed)
            ref_km = gap = ""
            if args.reference_s > 0 and n in args.reference_sizes:
                reference = min(
                    (
                        routing.solve(fixed, time_limit_s=args.reference_s, first_solution=s)
                        for s in args.reference_strategies
                    ),
                    key=lambda p: p.distance_m,
                )
                ref_km = f"{reference.distance_m / 1000:7.2f}"
                gap = f"{plan.distance_m / reference.distance_m - 1:+6.1%}"
            print(
                f"{n:>5} {len(vehicles):>4} {seed:>4} {elapsed:>7.2f} {plan.distance_m / 1000:>7.2f} "
                f"{baseline.distance_m / 1000:>10.2f} {-ratio:>+10.1%} {len(plan.dropped):>7} {ref_km:>7} {gap:>6}"
            )
        if args.seeds > 1:
            print(
                f"{n:>5} mean: plan {statistics.mean(times):.2f} s, {statistics.mean(ratios):.1%} shorter than arrival order"
            )


if __name__ == "__main__":
    main()
