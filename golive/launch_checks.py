"""Plan 8.1, pre-launch checks of the live endpoint: HTTPS redirect, HSTS and the other security headers,
DEBUG off, the admin behind a login, API and frontend smoke tests, health, and TLS.

Each check returns a small result (name, ok, evidence): the evidence says what was asked and what came
back, so a failed check in the Prefect UI already says what to fix. A check that cannot reach the
endpoint fails with the error as its evidence; it does not stop the others.

The endpoint is dataplane.public_endpoint(run): https://<domain> in AWS; in the sandbox the local app
with the X-Forwarded-Proto header the ALB would add. Redirects are never followed: they are what some
checks look at.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import secrets
import socket
import ssl
from typing import Callable
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from golive.dataplane import Endpoint
from golive.run import Run

HTTP_TIMEOUT_SECONDS = 10
MIN_HSTS_SECONDS = 180 * 86400  # browsers' preload lists ask for a year; half a year is the floor we accept
MIN_CERT_DAYS = 14  # ACM renews 60 days ahead: two weeks left means renewal has failed
SAFE_REFERRER_POLICIES = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}
# Text only Django's technical (DEBUG = True) error pages carry.
DEBUG_PAGE_MARKERS = ("DEBUG = True", "Django Version:", "URLconf defined in", "Traceback (most recent call last)")
ASSET = re.compile(r"""(?:src|href)=["']([^"']+\.(?:js|css))(?:\?[^"']*)?["']""")


class CheckResult(BaseModel):
    name: str
    ok: bool | None  # None: not applicable here (shown as pending, never as passed)
    evidence: str


def client(endpoint: Endpoint, *, headers: dict[str, str] | None = None) -> httpx.Client:
    """An HTTP client for the endpoint: its headers, no redirects followed, certificates verified, and
    no proxy from the environment for a loopback address (the sandbox's traffic stays on this machine)."""
    return httpx.Client(headers=endpoint.headers if headers is None else headers, follow_redirects=False,
                        timeout=HTTP_TIMEOUT_SECONDS, trust_env=not _is_loopback(endpoint.url))


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _describe(response: httpx.Response) -> str:
    location = response.headers.get("location")
    return f"{response.status_code}" + (f" to {location}" if location else "")


def check_https_redirect(endpoint: Endpoint) -> CheckResult:
    """A plain-HTTP request gets a permanent redirect (301 or 308) to https://. In AWS that is
    http://<domain>/; in the sandbox the local app asked without X-Forwarded-Proto, as a request the
    ALB received on port 80 would reach it."""
    parts = urlsplit(endpoint.url)
    url = urlunsplit(("http", parts.netloc, "/", "", ""))
    headers = {k: v for k, v in endpoint.headers.items() if k.lower() != "x-forwarded-proto"}
    with client(endpoint, headers=headers) as http:
        response = http.get(url)
    location = response.headers.get("location", "")
    asked = f"GET {url}" + (" without X-Forwarded-Proto" if len(headers) < len(endpoint.headers) else "")
    ok = response.status_code in (301, 308) and location.startswith("https://")
    advice = "" if ok else ": expected a 301 to https:// (SECURE_SSL_REDIRECT in Django, redirect-to-https in CloudFront)"
    return CheckResult(name="https-redirect", ok=ok, evidence=f"{asked} -> {_describe(response)}{advice}")


def check_hsts(endpoint: Endpoint, path: str = "/") -> CheckResult:
    """Strict-Transport-Security with a max-age of at least MIN_HSTS_SECONDS and includeSubDomains
    (the certificate covers the subdomains, so they are HTTPS-only too)."""
    with client(endpoint) as http:
        response = http.get(endpoint.url + path)
    value = response.headers.get("strict-transport-security")
    if not value:
        return CheckResult(name="hsts", ok=False, evidence=f"GET {path} -> {response.status_code} without a "
                           "Strict-Transport-Security header (set SECURE_HSTS_SECONDS)")
    directives = [d.strip().lower() for d in value.split(";")]
    max_age = next((int(d.split("=", 1)[1].strip('" ')) for d in directives
                    if d.startswith("max-age=") and d.split("=", 1)[1].strip('" ').isdigit()), 0)
    problems = []
    if max_age < MIN_HSTS_SECONDS:
        problems.append(f"max-age {max_age} s is below {MIN_HSTS_SECONDS} s (180 days)")
    if "includesubdomains" not in directives:
        problems.append("includeSubDomains is missing")
    evidence = f"GET {path} -> Strict-Transport-Security: {value}"
    return CheckResult(name="hsts", ok=not problems, evidence=evidence + (f" ({'; '.join(problems)})" if problems else ""))


def check_security_headers(endpoint: Endpoint, path: str = "/") -> CheckResult:
    """X-Content-Type-Options: nosniff, X-Frame-Options: DENY and a Referrer-Policy that does not send
    full URLs to other sites."""
    with client(endpoint) as http:
        response = http.get(endpoint.url + path)
    seen = {h: response.headers.get(h) for h in ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")}
    problems = []
    if (seen["X-Content-Type-Options"] or "").lower() != "nosniff":
        problems.append("X-Content-Type-Options must be nosniff (SECURE_CONTENT_TYPE_NOSNIFF)")
    if (seen["X-Frame-Options"] or "").upper() != "DENY":
        problems.append("X-Frame-Options must be DENY (X_FRAME_OPTIONS)")
    # A comma-separated list is a fallback chain: the browser applies the last one it knows.
    policy = (seen["Referrer-Policy"] or "").split(",")[-1].strip().lower()
    if policy not in SAFE_REFERRER_POLICIES:
        problems.append(f"Referrer-Policy must be one of {', '.join(sorted(SAFE_REFERRER_POLICIES))} "
                        "(SECURE_REFERRER_POLICY)")
    shown = ", ".join(f"{h}: {v if v is not None else '(absent)'}" for h, v in seen.items())
    return CheckResult(name="security-headers", ok=not problems,
                       evidence=f"GET {path} -> {shown}" + (f". {'; '.join(problems)}" if problems else ""))


def check_debug_off(endpoint: Endpoint) -> CheckResult:
    """A missing API URL gets a plain 404, not Django's debug page (which lists the URLconf and settings).
    An /api/ path, because every other path is a frontend route the single-page app answers with 200."""
    path = f"/api/golive-launch-check-{secrets.token_hex(4)}/"
    with client(endpoint) as http:
        response = http.get(endpoint.url + path)
    leaked = [m for m in DEBUG_PAGE_MARKERS if m in response.text]
    if leaked:
        return CheckResult(name="debug-off", ok=False, evidence=f"GET {path} -> {response.status_code} with Django's "
                           f"debug page ({', '.join(repr(m) for m in leaked)}): set DEBUG = False")
    ok = response.status_code == 404
    return CheckResult(name="debug-off", ok=ok, evidence=f"GET {path} -> {response.status_code}"
                       + (", a plain page without debug details" if ok else ": expected 404"))


def check_admin_requires_login(endpoint: Endpoint) -> CheckResult:
    """/admin/ without a session redirects to the login page (or is not served at all)."""
    with client(endpoint) as http:
        response = http.get(endpoint.url + "/admin/")
    location = response.headers.get("location", "")
    if response.status_code in (301, 302, 303, 307, 308) and "login" in location:
        return CheckResult(name="admin-login", ok=True, evidence=f"GET /admin/ -> {_describe(response)}")
    if response.status_code in (401, 403, 404):
        return CheckResult(name="admin-login", ok=True, evidence=f"GET /admin/ -> {response.status_code}: not open")
    return CheckResult(name="admin-login", ok=False, evidence=f"GET /admin/ -> {_describe(response)} without a login: "
                       "the admin must redirect anonymous visitors to its login page")


def _json(response: httpx.Response) -> dict | None:
    if "application/json" not in response.headers.get("content-type", ""):
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def check_api(endpoint: Endpoint) -> CheckResult:
    """The case list answers 200 JSON with cases, and the first case's detail answers with that case."""
    with client(endpoint) as http:
        listed = http.get(endpoint.url + "/api/cases/")
        data = _json(listed) if listed.status_code == 200 else None
        if not data or not data.get("results"):
            what = "an empty list (is the database seeded? Phase 5)" if data else \
                f"{_describe(listed)} {listed.headers.get('content-type', '')}".strip()
            return CheckResult(name="api-smoke", ok=False, evidence=f"GET /api/cases/ -> {what}")
        number = data["results"][0]["number"]
        path = f"/api/cases/{quote(number, safe=':')}/"
        detail = http.get(endpoint.url + path)
    one = _json(detail) if detail.status_code == 200 else None
    ok = bool(one) and one.get("number") == number
    evidence = (f"GET /api/cases/ -> 200 JSON, {data.get('count', len(data['results']))} cases; GET {path} -> "
                f"{detail.status_code}" + ("" if ok else f": expected case {number} as JSON"))
    return CheckResult(name="api-smoke", ok=ok, evidence=evidence)


def check_frontend(endpoint: Endpoint) -> CheckResult:
    """index.html answers 200 HTML that references its scripts and stylesheets, and each of them answers
    200 with a body."""
    with client(endpoint) as http:
        index = http.get(endpoint.url + "/")
        if index.status_code != 200 or "text/html" not in index.headers.get("content-type", ""):
            return CheckResult(name="frontend-smoke", ok=False, evidence=f"GET / -> {_describe(index)} "
                               f"{index.headers.get('content-type', '')}: expected the app's index.html")
        assets = list(dict.fromkeys(a for a in ASSET.findall(index.text) if not urlsplit(a).netloc))
        if not assets:
            return CheckResult(name="frontend-smoke", ok=False,
                               evidence="GET / -> 200 HTML that references no .js or .css asset: is the build deployed?")
        answers = {asset: http.get(endpoint.url + asset if asset.startswith("/") else f"{endpoint.url}/{asset}")
                   for asset in assets}
    broken = [f"{a} -> {r.status_code}" + ("" if r.status_code != 200 else " (empty)")
              for a, r in answers.items() if r.status_code != 200 or not r.content]
    shown = ", ".join(f"{a} {r.status_code} ({len(r.content):,} bytes)" for a, r in answers.items())
    return CheckResult(name="frontend-smoke", ok=not broken, evidence=f"GET / -> 200 HTML; {shown}"
                       + (f". Broken: {', '.join(broken)}" if broken else ""))


def check_health(endpoint: Endpoint) -> CheckResult:
    """/health/ answers 200 with status ok: the database and the cache both respond."""
    with client(endpoint) as http:
        response = http.get(endpoint.url + "/health/")
    data = _json(response) or {}
    ok = response.status_code == 200 and data.get("status") == "ok"
    return CheckResult(name="health", ok=ok, evidence=f"GET /health/ -> {response.status_code} {data or response.text[:200]}")


def _covers(pattern: str, name: str) -> bool:
    """Whether a certificate name (possibly *.example.com) covers a host name (one label per wildcard)."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def _uncovered(certificate_names: list[str], wanted: list[str]) -> list[str]:
    return [n for n in wanted if not any(_covers(c, n) for c in certificate_names)]


def _judge_certificate(name: str, source: str, certificate_names: list[str], wanted: list[str],
                       not_after: datetime.datetime, min_days: int, extra: list[str] = ()) -> CheckResult:
    """The shared verdict on a certificate's names and expiry, however it was read."""
    days_left = (not_after - datetime.datetime.now(datetime.timezone.utc)).days
    problems = list(extra)
    missing = _uncovered(certificate_names, wanted)
    if missing:
        problems.append(f"does not cover {', '.join(missing)}")
    if days_left < min_days:
        problems.append(f"expires in {days_left} days (under {min_days}): renewal has failed")
    evidence = (f"{source}: names {', '.join(sorted(certificate_names))}; needed {', '.join(wanted)}; expires "
                f"{not_after:%Y-%m-%d} ({days_left} days)")
    return CheckResult(name=name, ok=not problems, evidence=evidence + (f". {'; '.join(problems)}" if problems else ""))


def check_tls_handshake(host: str, names: list[str], *, port: int = 443, connect_to: str | None = None,
                        context: ssl.SSLContext | None = None, min_days: int = MIN_CERT_DAYS) -> CheckResult:
    """A real TLS handshake with host:port: the chain verifies against the system's trust store and the
    certificate matches host (the ssl module checks both), covers every name, and has min_days left.
    connect_to and context exist for tests (a local server, a test CA)."""
    context = context or ssl.create_default_context()
    try:
        with socket.create_connection((connect_to or host, port), timeout=HTTP_TIMEOUT_SECONDS) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                peer, version = tls.getpeercert(), tls.version()
    except ssl.SSLCertVerificationError as error:
        return CheckResult(name="tls", ok=False, evidence=f"TLS handshake with {host}:{port}: the certificate does "
                           f"not verify ({error.verify_message or error})")
    except (OSError, ssl.SSLError) as error:
        return CheckResult(name="tls", ok=False, evidence=f"TLS handshake with {host}:{port} failed: {error}")
    certificate_names = [value for kind, value in peer.get("subjectAltName", ()) if kind == "DNS"]
    not_after = datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(peer["notAfter"]), datetime.timezone.utc)
    issuer = dict(item for part in peer.get("issuer", ()) for item in part)
    source = (f"TLS handshake with {host}:{port} ({version}), chain verified, issued by "
              f"{issuer.get('organizationName') or issuer.get('commonName', '?')}")
    return _judge_certificate("tls", source, certificate_names, names, not_after, min_days)


def check_acm_certificate(run: Run, *, min_days: int = MIN_CERT_DAYS) -> CheckResult:
    """The environment's ACM certificate (found by its tags, as Phase 1 made it): ISSUED, covering the
    domain and its subdomains, with min_days left. The sandbox's stand-in for a handshake: the local app
    has no TLS listener."""
    from tasks.dns import Certificate

    found = Certificate(run, "certificate").discover()
    source = "sandbox: the local app has no TLS listener, so the certificate was read from ACM instead"
    if found is None:
        return CheckResult(name="tls", ok=False, evidence=f"{source}: no certificate tagged for environment "
                           f"{run.env_name} (Phase 1 requests it: run `golive apply {run.env_name}`)")
    certificate = found.raw
    status = certificate["Status"]
    names = sorted({certificate["DomainName"], *certificate.get("SubjectAlternativeNames", [])})
    extra = [] if status == "ISSUED" else [f"status is {status}, not ISSUED (DNS validation pending?)"]
    return _judge_certificate("tls", f"{source} ({found.id}, {status})", names, run.environment.certificate_names,
                              certificate["NotAfter"], min_days, extra)


def check_tls(run: Run, endpoint: Endpoint) -> CheckResult:
    """TLS, as far as this target allows: a real handshake in AWS, the ACM certificate in the sandbox."""
    if run.target.is_sandbox:
        return check_acm_certificate(run)
    return check_tls_handshake(urlsplit(endpoint.url).hostname or run.environment.domain,
                               run.environment.certificate_names)


HTTP_CHECKS: list[tuple[str, Callable[[Endpoint], CheckResult]]] = [
    ("https-redirect", check_https_redirect),
    ("hsts", check_hsts),
    ("security-headers", check_security_headers),
    ("debug-off", check_debug_off),
    ("admin-login", check_admin_requires_login),
    ("api-smoke", check_api),
    ("frontend-smoke", check_frontend),
    ("health", check_health),
]


def _guarded(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """One check's result; an unreachable endpoint (or any error) is that check's failure, not a crash."""
    try:
        return check()
    except (httpx.HTTPError, OSError, ValueError, KeyError, BotoCoreError, ClientError) as error:
        return CheckResult(name=name, ok=False, evidence=f"{type(error).__name__}: {error}")


def run_launch_checks(run: Run, endpoint: Endpoint | None = None) -> list[CheckResult]:
    """Every pre-launch check against the endpoint (default: where users reach the app), in order."""
    from golive.dataplane import public_endpoint

    endpoint = endpoint or public_endpoint(run)
    results = [_guarded(name, lambda check=check: check(endpoint)) for name, check in HTTP_CHECKS]
    results.append(_guarded("tls", lambda: check_tls(run, endpoint)))
    return results
