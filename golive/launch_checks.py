"""Plan 8.1, pre-launch checks of the live endpoint: HTTPS redirect, HSTS and the other security headers,
DEBUG off, the admin behind a login, API and frontend smoke tests, health, and TLS.

Each check returns a small result (name, ok, evidence): the evidence says what was asked and what came
back, so a failed check in the Prefect UI already says what to fix. A check that cannot reach the
endpoint fails with the error as its evidence; it does not stop the others.

The endpoint is the new stack before the cutover (probes.new_stack_endpoint: the site's names at
CloudFront's domain), in AWS and in the sandbox alike (there, the sandbox's CloudFront and ALB listeners,
over TLS with its CA). Redirects are never followed: they are what some checks look at. This module is
policy (what each check expects); golive/probes.py is the mechanism (where a request goes).
"""

from __future__ import annotations

import datetime
import re
import secrets
import socket
import ssl
from typing import Callable
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from golive.probes import Check, Endpoint, client, dial
from golive.run import Run

HTTP_TIMEOUT_SECONDS = 10
MIN_HSTS_SECONDS = 180 * 86400  # browsers' preload lists ask for a year; half a year is the floor we accept
MIN_CERT_DAYS = 14  # ACM renews 60 days ahead: two weeks left means renewal has failed
SAFE_REFERRER_POLICIES = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}
# Text only Django's technical (DEBUG = True) error pages carry.
DEBUG_PAGE_MARKERS = ("DEBUG = True", "Django Version:", "URLconf defined in", "Traceback (most recent call last)")
ASSET = re.compile(r"""(?:src|href)=["']([^"']+\.(?:js|css))(?:\?[^"']*)?["']""")


def _describe(response: httpx.Response) -> str:
    location = response.headers.get("location")
    return f"{response.status_code}" + (f" to {location}" if location else "")


def check_https_redirect(endpoint: Endpoint) -> Check:
    """A plain-HTTP request for http://<host>/ through the endpoint (CloudFront's viewer side, before the
    cutover) gets a permanent redirect (301 or 308) to https://. Without the X-Forwarded-Proto an endpoint
    may carry: an app asked directly must redirect a request the ALB received on port 80."""
    parts = urlsplit(endpoint.url)
    url = urlunsplit(("http", parts.netloc, "/", "", ""))
    headers = {k: v for k, v in endpoint.headers.items() if k.lower() != "x-forwarded-proto"}
    with client(endpoint, headers=headers) as http:
        response = http.get(url)
    location = response.headers.get("location", "")
    asked = f"GET {url} via {endpoint.via}" + (" without X-Forwarded-Proto" if len(headers) < len(endpoint.headers) else "")
    ok = response.status_code in (301, 308) and location.startswith("https://")
    advice = "" if ok else ": expected a 301 to https:// (SECURE_SSL_REDIRECT in Django, redirect-to-https in CloudFront)"
    return Check(name="https-redirect", ok=ok, evidence=f"{asked} -> {_describe(response)}{advice}")


def check_hsts(endpoint: Endpoint, path: str = "/") -> Check:
    """Strict-Transport-Security with a max-age of at least MIN_HSTS_SECONDS and includeSubDomains
    (the certificate covers the subdomains, so they are HTTPS-only too)."""
    with client(endpoint) as http:
        response = http.get(endpoint.url + path)
    value = response.headers.get("strict-transport-security")
    if not value:
        return Check(name="hsts", ok=False, evidence=f"GET {path} -> {response.status_code} without a "
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
    return Check(name="hsts", ok=not problems, evidence=evidence + (f" ({'; '.join(problems)})" if problems else ""))


def check_security_headers(endpoint: Endpoint, path: str = "/") -> Check:
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
    return Check(name="security-headers", ok=not problems,
                       evidence=f"GET {path} -> {shown}" + (f". {'; '.join(problems)}" if problems else ""))


def check_debug_off(endpoint: Endpoint) -> Check:
    """A missing API URL gets a plain 404, not Django's debug page (which lists the URLconf and settings).
    An /api/ path, because every other path is a frontend route the single-page app answers with 200."""
    path = f"/api/golive-launch-check-{secrets.token_hex(4)}/"
    with client(endpoint) as http:
        response = http.get(endpoint.url + path)
    leaked = [m for m in DEBUG_PAGE_MARKERS if m in response.text]
    if leaked:
        return Check(name="debug-off", ok=False, evidence=f"GET {path} -> {response.status_code} with Django's "
                           f"debug page ({', '.join(repr(m) for m in leaked)}): set DEBUG = False")
    ok = response.status_code == 404
    return Check(name="debug-off", ok=ok, evidence=f"GET {path} -> {response.status_code}"
                       + (", a plain page without debug details" if ok else ": expected 404"))


def check_admin_requires_login(endpoint: Endpoint) -> Check:
    """/admin/ without a session redirects to the login page (or is not served at all)."""
    with client(endpoint) as http:
        response = http.get(endpoint.url + "/admin/")
    location = response.headers.get("location", "")
    if response.status_code in (301, 302, 303, 307, 308) and "login" in location:
        return Check(name="admin-login", ok=True, evidence=f"GET /admin/ -> {_describe(response)}")
    if response.status_code in (401, 403, 404):
        return Check(name="admin-login", ok=True, evidence=f"GET /admin/ -> {response.status_code}: not open")
    return Check(name="admin-login", ok=False, evidence=f"GET /admin/ -> {_describe(response)} without a login: "
                       "the admin must redirect anonymous visitors to its login page")


def _json(response: httpx.Response) -> dict | None:
    if "application/json" not in response.headers.get("content-type", ""):
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def check_api(endpoint: Endpoint) -> Check:
    """The case list answers 200 JSON with cases, and the first case's detail answers with that case."""
    with client(endpoint) as http:
        listed = http.get(endpoint.url + "/api/cases/")
        data = _json(listed) if listed.status_code == 200 else None
        if not data or not data.get("results"):
            what = "an empty list (is the database seeded? Phase 5)" if data else \
                f"{_describe(listed)} {listed.headers.get('content-type', '')}".strip()
            return Check(name="api-smoke", ok=False, evidence=f"GET /api/cases/ -> {what}")
        number = data["results"][0]["number"]
        path = f"/api/cases/{quote(number, safe=':')}/"
        detail = http.get(endpoint.url + path)
    one = _json(detail) if detail.status_code == 200 else None
    ok = bool(one) and one.get("number") == number
    evidence = (f"GET /api/cases/ -> 200 JSON, {data.get('count', len(data['results']))} cases; GET {path} -> "
                f"{detail.status_code}" + ("" if ok else f": expected case {number} as JSON"))
    return Check(name="api-smoke", ok=ok, evidence=evidence)


def check_frontend(endpoint: Endpoint) -> Check:
    """index.html answers 200 HTML that references its scripts and stylesheets, and each of them answers
    200 with a body."""
    with client(endpoint) as http:
        index = http.get(endpoint.url + "/")
        if index.status_code != 200 or "text/html" not in index.headers.get("content-type", ""):
            return Check(name="frontend-smoke", ok=False, evidence=f"GET / -> {_describe(index)} "
                               f"{index.headers.get('content-type', '')}: expected the app's index.html")
        assets = list(dict.fromkeys(a for a in ASSET.findall(index.text) if not urlsplit(a).netloc))
        if not assets:
            return Check(name="frontend-smoke", ok=False,
                               evidence="GET / -> 200 HTML that references no .js or .css asset: is the build deployed?")
        answers = {asset: http.get(endpoint.url + asset if asset.startswith("/") else f"{endpoint.url}/{asset}")
                   for asset in assets}
    broken = [f"{a} -> {r.status_code}" + ("" if r.status_code != 200 else " (empty)")
              for a, r in answers.items() if r.status_code != 200 or not r.content]
    shown = ", ".join(f"{a} {r.status_code} ({len(r.content):,} bytes)" for a, r in answers.items())
    return Check(name="frontend-smoke", ok=not broken, evidence=f"GET / -> 200 HTML; {shown}"
                       + (f". Broken: {', '.join(broken)}" if broken else ""))


def check_health(endpoint: Endpoint) -> Check:
    """/health/ answers 200 with status ok: the database and the cache both respond."""
    with client(endpoint) as http:
        response = http.get(endpoint.url + "/health/")
    data = _json(response) or {}
    ok = response.status_code == 200 and data.get("status") == "ok"
    return Check(name="health", ok=ok, evidence=f"GET /health/ -> {response.status_code} {data or response.text[:200]}")


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
                       not_after: datetime.datetime, min_days: int, extra: list[str] = ()) -> Check:
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
    return Check(name=name, ok=not problems, evidence=evidence + (f". {'; '.join(problems)}" if problems else ""))


def check_tls_handshake(endpoint: Endpoint, names: list[str], *, host: str | None = None,
                        min_days: int = MIN_CERT_DAYS) -> Check:
    """A real TLS handshake through the endpoint with the site's name as SNI: the chain verifies (against
    the system's trust store, or the sandbox's CA) and the certificate matches the name (the ssl module
    checks both), covers every name, and has min_days left."""
    host = host or endpoint.host
    context = ssl.create_default_context(cafile=endpoint.ca_file) if endpoint.ca_file else ssl.create_default_context()
    try:
        address, port, how = dial(endpoint, host)
        with socket.create_connection((address, port), timeout=HTTP_TIMEOUT_SECONDS) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                peer, version = tls.getpeercert(), tls.version()
    except ssl.SSLCertVerificationError as error:
        return Check(name="tls", ok=False, evidence=f"TLS handshake with {host} via {endpoint.via}: the certificate "
                     f"does not verify ({error.verify_message or error})")
    except (OSError, ssl.SSLError) as error:
        return Check(name="tls", ok=False, evidence=f"TLS handshake with {host} via {endpoint.via} failed: {error}")
    certificate_names = [value for kind, value in peer.get("subjectAltName", ()) if kind == "DNS"]
    not_after = datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(peer["notAfter"]), datetime.timezone.utc)
    issuer = dict(item for part in peer.get("issuer", ()) for item in part)
    source = (f"TLS handshake with {host} at {how}:{port} ({version}), chain verified, issued by "
              f"{issuer.get('organizationName') or issuer.get('commonName', '?')}")
    return _judge_certificate("tls", source, certificate_names, names, not_after, min_days)


def check_tls(run: Run, endpoint: Endpoint) -> Check:
    """TLS as visitors will meet it: a handshake for each of the site's names through the endpoint."""
    names = run.environment.certificate_names
    results = [check_tls_handshake(endpoint.at(name), names) for name in names]
    failed = [r for r in results if not r.ok]
    return Check(name="tls", ok=not failed, evidence="; ".join(r.evidence for r in (failed or results[:1]))
                 + ("" if failed else f" (and {', '.join(names[1:])} the same way)" if len(names) > 1 else ""))


HTTP_CHECKS: list[tuple[str, Callable[[Endpoint], Check]]] = [
    ("https-redirect", check_https_redirect),
    ("hsts", check_hsts),
    ("security-headers", check_security_headers),
    ("debug-off", check_debug_off),
    ("admin-login", check_admin_requires_login),
    ("api-smoke", check_api),
    ("frontend-smoke", check_frontend),
    ("health", check_health),
]


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """One check's result; an unreachable endpoint (or any error) is that check's failure, not a crash."""
    try:
        return check()
    except (httpx.HTTPError, OSError, ValueError, LookupError, BotoCoreError, ClientError) as error:
        return Check(name=name, ok=False, evidence=f"{type(error).__name__}: {error}")


def check_alb_refuses_direct(endpoint: Endpoint) -> Check:
    """The ALB answers only what came through CloudFront: a request straight to it (no origin header)
    gets 403, or no connection at all (its security group admits CloudFront's addresses only)."""
    from golive.probes import probe

    answer = probe(endpoint, "/health/")
    ok = answer.status == 403 or answer.status is None
    why = ("refused: only CloudFront's requests carry the origin header" if answer.status == 403 else
           "no connection: the security group admits CloudFront's addresses only" if ok else
           "served without the origin header: anyone can go around CloudFront (and its WAF)")
    return Check(name="alb-only-via-cloudfront", ok=ok, evidence=f"GET /health/ via {endpoint.via} -> {answer.show()}: {why}")


def run_launch_checks(run: Run, endpoint: Endpoint | None = None, alb: Endpoint | None = None) -> list[Check]:
    """Every pre-launch check against the endpoint (default: the new stack, through CloudFront), in order."""
    from golive.probes import alb_endpoint, new_stack_endpoint

    endpoint = endpoint or new_stack_endpoint(run)
    api = endpoint.at(f"api.{run.environment.domain}")
    results = [_guarded(name, lambda check=check: check(endpoint)) for name, check in HTTP_CHECKS]
    results.append(_guarded("tls", lambda: check_tls(run, endpoint)))
    # The API host through CloudFront (the ALB's api-host rule), and the ALB refusing everyone else.
    api_health = _guarded("api-host", lambda: check_health(api))
    results.append(api_health.model_copy(update={"name": "api-host", "evidence": f"{api.host}: {api_health.evidence}"}))
    results.append(_guarded("alb-only-via-cloudfront", lambda: check_alb_refuses_direct(alb or alb_endpoint(run))))
    return results
