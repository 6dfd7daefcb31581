"""Sandbox orchestration figures: a fresh apply, a converged re-run (and its AWS writes), a plan,
and a teardown, each timed against a fresh moto server and a local Prefect server.

Targets (README): fresh go-live orchestration <= 20 s; converged re-run <= 10 s with zero writes.
Run: make bench   (or .venv/bin/python benchmarks/orchestration.py [--rounds N])
"""

from __future__ import annotations

import argparse
import statistics
import time
import urllib.request

import isolated  # noqa: F401,E402  (first: telemetry off, a state directory of its own)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--environment", default="sandbox")
    args = parser.parse_args()

    from golive.aws import forget_clients
    from golive.changes import Summary
    from golive.run import Run
    from golive.sandbox import control_plane, data_plane

    started = time.monotonic()
    endpoint = control_plane.up()["aws_endpoint_url"]
    data_plane.up(app=False)  # Phase 1 points DATABASE_URL and REDIS_URL at the local servers
    print(f"sandbox up (moto, PostgreSQL, Redis): {time.monotonic() - started:.2f} s ({endpoint})")
    from prefect.testing.utilities import prefect_test_harness

    started = time.monotonic()
    with prefect_test_harness(server_startup_timeout=60):
        print(f"prefect server up: {time.monotonic() - started:.2f} s")
        from flows.infrastructure import infrastructure
        from flows.teardown import teardown

        figures: dict[str, list[float]] = {"fresh apply": [], "converged re-run": [], "plan": [], "teardown": []}
        writes: list[int] = []
        for round_ in range(args.rounds):
            urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
            forget_clients()
            run = Run.prepare(args.environment, sandbox=True)
            for label, call in (
                ("fresh apply", lambda: infrastructure(environment=args.environment, sandbox=True)),
                ("converged re-run", lambda: infrastructure(environment=args.environment, sandbox=True)),
                ("plan", lambda: infrastructure(environment=args.environment, sandbox=True, mode="plan")),
                ("teardown", lambda: teardown(environment=args.environment, sandbox=True)),
            ):
                run.aws.log.clear()
                t0 = time.monotonic()
                result = call()
                figures[label].append(time.monotonic() - t0)
                if label == "converged re-run":
                    writes.append(len(run.aws.log.writes()))
                    assert not Summary.of(result.changes).has_changes
                print(f"  round {round_ + 1} {label:17s} {figures[label][-1]:6.2f} s  "
                      f"{len(run.aws.log.calls):4d} AWS calls, {len(run.aws.log.writes()):3d} writes")
    data_plane.down()
    control_plane.down()

    print(f"\nphase 1 on the sandbox, {args.rounds} rounds (median / max):")
    for label, values in figures.items():
        print(f"  {label:17s} {statistics.median(values):6.2f} s / {max(values):6.2f} s")
    print(f"  writes in converged re-runs: {writes}")


if __name__ == "__main__":
    main()
