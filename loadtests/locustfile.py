"""Plan 8.1, load testing: what visitors of Precedentum do, as Locust users.

A visitor lands on the single-page app (index.html, then its CSS and JavaScript), browses the case list
page by page, opens cases, looks at the judges' roster and a judge's page, follows a deep link into the
frontend; the load balancer polls /health/ meanwhile. Every response is checked for what the page needs,
not only for its status: a 200 with an empty or malformed body is a failure.

Run by golive (golive/loadtest.py) as a subprocess, never imported into a process that runs Prefect
(importing locust monkey-patches sockets and threads through gevent). The environment passes in:
  GOLIVE_LOADTEST_HEADERS       JSON object of headers every request carries (the sandbox's local app
                                needs X-Forwarded-Proto: https, as the ALB would add it)
  GOLIVE_LOADTEST_WAIT_SECONDS  "MIN,MAX" think time between tasks (default "0.1,0.5"; "0,0" = no pause)
  GOLIVE_LOADTEST_CONNECT       JSON {"host", "address", "port", "ca_file"}: requests for host go to
                                address:port, still named host (Host, SNI, certificate check), trusting
                                ca_file when given (golive/probes.py dial: CloudFront's domain before the
                                cutover; the sandbox's listeners and CA there)
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import re

from locust import FastHttpUser, between, constant, events, task
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

DEFAULT_WAIT = "0.1,0.5"


def _connect() -> dict | None:
    raw = os.environ.get("GOLIVE_LOADTEST_CONNECT", "")
    return json.loads(raw) if raw else None


def _dial_elsewhere(connect: dict | None) -> None:
    """Send connections for connect["host"] to its address and port (the site's name is kept for the
    Host header and TLS); geventhttpclient resolves through gevent.socket.getaddrinfo."""
    if not connect:
        return
    import gevent.socket

    resolve = gevent.socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == connect["host"]:
            return resolve(connect["address"], connect["port"], *args, **kwargs)
        return resolve(host, port, *args, **kwargs)

    gevent.socket.getaddrinfo = getaddrinfo


def _ssl_context_factory(connect: dict | None):
    """Trust the sandbox's CA (and only it) when one is given; None: the default (the system's store)."""
    if not connect or not connect.get("ca_file"):
        return None
    import gevent.ssl

    return lambda *args, **kwargs: gevent.ssl.create_default_context(cafile=connect["ca_file"])


CONNECT = _connect()
_dial_elsewhere(CONNECT)


def _headers() -> dict[str, str]:
    raw = os.environ.get("GOLIVE_LOADTEST_HEADERS", "") or "{}"
    try:
        headers = json.loads(raw)
    except json.JSONDecodeError as error:
        raise SystemExit(f"GOLIVE_LOADTEST_HEADERS is not JSON ({error}): pass an object such as "
                         '{"X-Forwarded-Proto": "https"}')
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise SystemExit("GOLIVE_LOADTEST_HEADERS must be a JSON object of strings, e.g. "
                         '{"X-Forwarded-Proto": "https"}')
    return headers


def _wait_time():
    raw = os.environ.get("GOLIVE_LOADTEST_WAIT_SECONDS", "") or DEFAULT_WAIT
    try:
        low, high = (float(part) for part in raw.split(","))
    except ValueError:
        raise SystemExit(f"GOLIVE_LOADTEST_WAIT_SECONDS={raw!r}: expected 'MIN,MAX' in seconds, e.g. {DEFAULT_WAIT!r}")
    if not 0 <= low <= high:
        raise SystemExit(f"GOLIVE_LOADTEST_WAIT_SECONDS={raw!r}: need 0 <= MIN <= MAX")
    return constant(low) if low == high else between(low, high)


ASSET = re.compile(r"""(?:src|href)=["'](/static/[^"']+\.(?:js|css))["']""")


def _json(response, *keys: str) -> tuple[dict | None, str | None]:
    """The JSON object of a response and the first problem with it (None when it has every key)."""
    if response.status_code != 200:
        return None, _status_problem(response)
    if "application/json" not in (response.headers.get("content-type") or ""):
        return None, f"expected JSON, got {response.headers.get('content-type')!r}"
    try:
        data = response.json()
    except ValueError as error:
        return None, f"body is not JSON: {error}"
    missing = [k for k in keys if k not in data]
    return (data, f"JSON lacks {', '.join(missing)}") if missing else (data, None)


def _settle(response, problem: str | None) -> None:
    """Mark the request failed with the problem, or passed (overriding Locust's status-code default)."""
    if problem:
        response.failure(problem)
    else:
        response.success()


def _status_problem(response) -> str:
    if 300 <= response.status_code < 400:
        # A redirect here means the request looked like plain HTTP (or a login wall): say which.
        return (f"{response.status_code} redirect to {response.headers.get('location')!r}: does the target need "
                "headers (GOLIVE_LOADTEST_HEADERS)?")
    return f"HTTP {response.status_code}"


class Visitor(FastHttpUser):
    """One browser session on the site. Weights follow a reading-heavy audience: the case list and case
    pages most, the roster less, a fresh page load (index + assets) now and then."""

    wait_time = _wait_time()
    default_headers = _headers()
    insecure = False  # FastHttpUser skips certificate checks by default; a go-live test must not
    ssl_context_factory = _ssl_context_factory(CONNECT)
    connection_timeout = 5.0
    network_timeout = 10.0  # a request stuck this long is a failure, not a slow success

    def on_start(self) -> None:
        """Arrive like a browser does: the page, its assets, then the data the first screen shows."""
        self.case_numbers: list[str] = []
        self.judge_ids: list[int] = []
        self.case_pages = 1
        self.home()
        self.judges()
        self.cases()

    def _get(self, path: str, name: str | None = None):
        # Redirects are not followed: each one is a finding (a wrong scheme, a login wall), not a detour.
        return self.client.get(path, name=name or path, catch_response=True, allow_redirects=False)

    @task(2)
    def home(self) -> None:
        """A fresh page load: index.html, then every asset it references (no browser cache)."""
        assets: list[str] = []
        with self._get("/", "/ (index.html)") as response:
            if response.status_code != 200:
                response.failure(_status_problem(response))
                return
            assets = ASSET.findall(response.text or "")
            if 'id="app"' not in response.text or not assets:
                response.failure("index.html lacks the app's mount point or its /static/ assets")
                return
            response.success()
        for asset in assets:
            with self._get(asset, "/static/[asset]") as static:
                if static.status_code != 200:
                    static.failure(_status_problem(static))
                elif not static.content:
                    static.failure(f"{asset} is empty")
                else:
                    static.success()

    @task(1)
    def deep_link(self) -> None:
        """A shared link into the frontend (/cases/<number>): the server must answer with the app shell."""
        target = f"/cases/{random.choice(self.case_numbers)}" if self.case_numbers else "/cases"
        with self._get(target, "/cases/[number] (frontend route)") as response:
            if response.status_code != 200:
                response.failure(_status_problem(response))
            elif 'id="app"' not in response.text:
                response.failure("a frontend route did not get the app shell (index.html)")
            else:
                response.success()

    @task(4)
    def cases(self) -> None:
        """A page of the case list, then one case from it, as a reader skimming the docket."""
        page = random.randint(1, self.case_pages)
        with self._get(f"/api/cases/?page={page}", "/api/cases/?page=[n]") as response:
            data, problem = _json(response, "count", "results")
            if not problem and not data["results"]:
                problem = f"no cases on page {page} (count {data['count']}): is the database seeded?"
            if problem:
                response.failure(problem)
                return
            response.success()
        numbers = [c["number"] for c in data["results"]]
        self.case_numbers = list(dict.fromkeys(self.case_numbers + numbers))[-200:]
        if page == 1:  # the first page says how many pages there are
            self.case_pages = max(1, math.ceil(data["count"] / len(data["results"])))
        self.case(random.choice(numbers))

    @task(3)
    def case(self, number: str | None = None) -> None:
        """One case's page (the detail endpoint)."""
        if number is None:
            if not self.case_numbers:
                return
            number = random.choice(self.case_numbers)
        with self._get(f"/api/cases/{number}/", "/api/cases/[number]/") as response:
            data, problem = _json(response, "number", "title", "court")
            if not problem and data["number"] != number:
                problem = f"asked for case {number}, got {data['number']}"
            _settle(response, problem)

    @task(2)
    def judges(self) -> None:
        """The court's roster (cached in Redis by the app), then one judge's page with recent cases."""
        with self._get("/api/judges/?court=ilnd", "/api/judges/?court=[court]") as response:
            data, problem = _json(response, "results")
            if not problem and not data["results"]:
                problem = "the roster is empty: is the database seeded?"
            if problem:
                response.failure(problem)
                return
            response.success()
        self.judge_ids = [j["id"] for j in data["results"]]
        self.judge(random.choice(self.judge_ids))

    @task(1)
    def judge(self, judge_id: int | None = None) -> None:
        """A judge's page: the judge and their recent cases."""
        if judge_id is None:
            if not self.judge_ids:
                return
            judge_id = random.choice(self.judge_ids)
        with self._get(f"/api/judges/{judge_id}/", "/api/judges/[id]/") as response:
            data, problem = _json(response, "id", "name", "recent_cases")
            if not problem and data["id"] != judge_id:
                problem = f"asked for judge {judge_id}, got {data['id']}"
            _settle(response, problem)

    @task(1)
    def judge_docket(self) -> None:
        """The cases of one judge (the list filtered)."""
        if not self.judge_ids:
            return
        with self._get(f"/api/cases/?judge={random.choice(self.judge_ids)}", "/api/cases/?judge=[id]") as response:
            _, problem = _json(response, "count", "results")
            _settle(response, problem)

    @task(1)
    def courts(self) -> None:
        with self._get("/api/courts/") as response:
            data, problem = _json(response, "results")
            if not problem and not data["results"]:
                problem = "no court: is the database seeded?"
            _settle(response, problem)

    @task(1)
    def health(self) -> None:
        """What the load balancer polls: 200 and status ok only when the database and cache answer."""
        with self._get("/health/") as response:
            data, problem = _json(response, "status")
            if not problem and data["status"] != "ok":
                problem = f"unhealthy: {data}"
            _settle(response, problem)


@events.quitting.add_listener
def _write_final_stats(environment, **_kwargs) -> None:
    """Locust rewrites PREFIX_stats.csv once a second, so the file it leaves misses the last second of
    requests. Write it once more now that the users have stopped, with Locust's own writer, so the file
    golive reads holds every request of the run."""
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix:
        return
    with open(f"{prefix}_stats.csv", "w", newline="") as handle:
        StatsCSV(environment, PERCENTILES_TO_REPORT).requests_csv(csv.writer(handle))
