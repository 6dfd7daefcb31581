"""Backup, restore and validation times on the sandbox's real PostgreSQL at 10k, 100k and 1M rows.

Target (README): restore verification of 1M rows <= 30 s. Starts its own sandbox in a temporary state
directory (moto, PostgreSQL, Redis), loads the example app's schema and seed, then grows the cases
table to each size with one INSERT ... SELECT generate_series and times every step.
Run: .venv/bin/python benchmarks/backup_restore.py [--sizes 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import time

import isolated  # noqa: F401,E402  (first: telemetry off, a state directory of its own)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()

    import psycopg

    from golive import backups, dataplane
    from golive.run import Run
    from golive.sandbox import app, control_plane, data_plane
    from tasks.verify import read_facts, validate_copy

    control_plane.up()
    data_plane.up(app=False)
    try:
        local = app.wire()  # the local app's environment: the sandbox's superuser login on the local database
        run = Run.prepare("sandbox", sandbox=True)
        dataplane.run_manage_here(run, "migrate", "--noinput", environment=local)
        dataplane.run_manage_here(run, "seed_ilnd_data", "--cases", "0", environment=local)
        source = local["DATABASE_URL"]
        started = time.monotonic()
        import great_expectations  # noqa: F401  (its ~3 s import is paid once, not per size)
        print(f"great-expectations import: {time.monotonic() - started:.2f} s")

        store = backups.SandboxBackups(run, url=source)
        print(f"{'rows':>9} | {'backup':>7} {'size':>8} | {'restore':>7} | {'facts':>6} | {'validate':>8} | "
              f"{'cleanup':>7} | {'verification':>12}")
        for size in args.sizes:
            with psycopg.connect(source, autocommit=True) as connection:
                connection.execute("TRUNCATE courts_case")
                connection.execute(
                    "INSERT INTO courts_case (number, title, court_id, judge_id, filed_on, nature_of_suit, status) "
                    "SELECT '1:' || g, 'Case ' || g, (SELECT min(id) FROM courts_court), "
                    "(SELECT array_agg(id) FROM courts_judge)[1 + g %% 44], date '2023-01-02' + (g %% 1000), "
                    "'Contract', CASE WHEN g %% 3 = 0 THEN 'closed' ELSE 'open' END "
                    "FROM generate_series(1, %s) AS g", (size,))
                connection.execute("VACUUM ANALYZE courts_case")
            t0 = time.monotonic()
            backup = store.take()
            t1 = time.monotonic()
            scratch = store.restore(backup)
            t2 = time.monotonic()
            facts = read_facts(source)
            t3 = time.monotonic()
            outcomes = validate_copy(scratch.database_url, facts)
            t4 = time.monotonic()
            store.remove(scratch)
            store.discard(backup)
            t5 = time.monotonic()
            assert all(o.success for o in outcomes), [o for o in outcomes if not o.success]
            assert facts["courts_case"].rows == size
            print(f"{size:>9,} | {t1 - t0:6.2f}s {backup.size_bytes / 1e6:6.1f}MB | {t2 - t1:6.2f}s | "
                  f"{t3 - t2:5.2f}s | {t4 - t3:7.2f}s | {t5 - t4:6.2f}s | {t5 - t0:11.2f}s")
    finally:
        data_plane.down()
        control_plane.down()


if __name__ == "__main__":
    main()
