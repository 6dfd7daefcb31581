"""Plan 8.1, pre-launch checks: every check passes on the sandbox's new stack (its CloudFront and ALB
listeners over TLS, the app in its production posture behind them), and each one fails, saying why,
against a server that gets that one thing wrong."""

from __future__ import annotations

import datetime

import pytest

from golive.launch_checks import (
    check_admin_requires_login,
    check_api,
    check_debug_off,
    check_frontend,
    check_hsts,
    check_https_redirect,
    check_security_headers,
    check_tls_handshake,
    run_launch_checks,
)
from golive.probes import Endpoint
from golive.sandbox import tls
from tests.apphelpers import seeded_app, tiny_server
from tests.conftest import prepare
from tests.edgehelpers import make_distribution

DOMAIN = "sandbox.precedentum.test"


@pytest.fixture(scope="module")
def launched(sandbox, edge):
    """The app, seeded, behind the new stack's records in moto (an ALB that wants the origin header and a
    distribution that adds it), served by the sandbox's edge. The checks only read: one app for all."""
    with seeded_app(sandbox, before_start=lambda: make_distribution(prepare("sandbox"))) as endpoint:
        yield prepare("sandbox"), endpoint


def test_every_launch_check_passes_on_the_sandbox_new_stack(launched):
    run, _ = launched
    results = run_launch_checks(run)  # the gate's default: the new stack, through CloudFront's domain

    assert [r.name for r in results] == ["https-redirect", "hsts", "security-headers", "debug-off", "admin-login",
                                         "api-smoke", "frontend-smoke", "health", "tls", "api-host",
                                         "alb-only-via-cloudfront"]
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    evidence = {r.name: r.evidence for r in results}
    assert f"GET http://{DOMAIN}/ via CloudFront " in evidence["https-redirect"]
    assert f"-> 301 to https://{DOMAIN}/" in evidence["https-redirect"]
    assert "includeSubDomains" in evidence["hsts"]
    assert "/static/app.js 200" in evidence["frontend-smoke"] and "300 cases" in evidence["api-smoke"]
    # A real handshake with the site's name (SNI) at CloudFront's listener, verified against the sandbox's CA.
    assert evidence["tls"].startswith(f"TLS handshake with {DOMAIN} at ") and ".cloudfront.net" in evidence["tls"]
    assert "chain verified, issued by golive sandbox CA" in evidence["tls"]
    assert evidence["api-host"].startswith(f"api.{DOMAIN}: GET /health/ -> 200")
    assert ".elb.amazonaws.com directly -> 403" in evidence["alb-only-via-cloudfront"]


HTML = b'<!doctype html><div id="app"></div><script src="/static/app.js"></script>'
DEBUG_404 = (b"<h1>Page not found <span>(404)</span></h1><p>Using the URLconf defined in <code>config.urls</code>"
             b"</p><p>You're seeing this error because you have <code>DEBUG = True</code> in your settings.</p>")


def test_each_check_fails_on_a_server_that_gets_it_wrong():
    """A bare server: no redirect, a short HSTS, no other security header, an open admin, an empty API and
    an index whose script is missing. (Its plain 404 is what DEBUG off looks like: that check passes.)"""
    routes = {
        "/": (200, {"Content-Type": "text/html", "Strict-Transport-Security": "max-age=300"}, HTML),
        "/admin/": (200, {"Content-Type": "text/html"}, b"<h1>Site administration</h1>"),
        "/api/cases/": (200, {"Content-Type": "application/json"}, b'{"count": 0, "results": []}'),
    }
    with tiny_server(routes) as url:
        endpoint = Endpoint(url=url, via="a test server")

        redirect = check_https_redirect(endpoint)
        assert not redirect.ok and f"GET {url}/ via a test server -> 200: expected a 301 to https://" in redirect.evidence
        hsts = check_hsts(endpoint)
        assert not hsts.ok and "max-age 300 s is below 15552000 s" in hsts.evidence
        assert "includeSubDomains is missing" in hsts.evidence
        headers = check_security_headers(endpoint)
        assert not headers.ok and "X-Frame-Options: (absent)" in headers.evidence
        assert "X-Content-Type-Options must be nosniff" in headers.evidence
        admin = check_admin_requires_login(endpoint)
        assert not admin.ok and "GET /admin/ -> 200 without a login" in admin.evidence
        api = check_api(endpoint)
        assert not api.ok and "an empty list (is the database seeded?" in api.evidence
        frontend = check_frontend(endpoint)
        assert not frontend.ok and "Broken: /static/app.js -> 404" in frontend.evidence
        debug = check_debug_off(endpoint)
        assert debug.ok and "a plain page without debug details" in debug.evidence, "a plain 404 is right"


def test_debug_pages_are_caught(monkeypatch):
    monkeypatch.setattr("golive.launch_checks.secrets.token_hex", lambda n: "0" * 2 * n)
    with tiny_server({"/api/golive-launch-check-00000000/": (404, {"Content-Type": "text/html"}, DEBUG_404)}) as url:
        debug = check_debug_off(Endpoint(url=url, via="a test server"))
    assert not debug.ok and "Django's debug page ('DEBUG = True', 'URLconf defined in')" in debug.evidence
    assert debug.evidence.endswith("set DEBUG = False")


def test_an_unreachable_endpoint_fails_every_http_check_without_raising(launched):
    run, _ = launched
    nowhere = Endpoint(url="http://127.0.0.1:9", via="nothing listens on the discard port")
    results = run_launch_checks(run, nowhere, alb=nowhere)
    assert all(not r.ok and "ConnectError" in r.evidence for r in results if r.name not in ("tls", "alb-only-via-cloudfront"))
    assert not next(r for r in results if r.name == "tls").ok


def served_with(names: list[str], **validity) -> tls.ssl.SSLContext:
    return tls.server_context(names, **validity)


def tls_check(url: str, **extra):
    endpoint = Endpoint(url=f"https://{DOMAIN}", via="a test server", connect_to=url.removeprefix("https://"),
                        **{"ca_file": str(tls.ca_file()), **extra})
    return check_tls_handshake(endpoint, [DOMAIN, f"www.{DOMAIN}", f"api.{DOMAIN}"])


def test_the_tls_handshake_checks_chain_names_and_expiry(sandbox):
    """The sandbox's CA signs each server's certificate; every check but the first must fail, saying why."""
    now = datetime.datetime.now(datetime.timezone.utc)
    with tiny_server({}, wrap=served_with([DOMAIN, f"*.{DOMAIN}"], not_after=now + datetime.timedelta(days=90))) as url:
        good = tls_check(url)
        untrusted = tls_check(url, ca_file=None)  # the system's trust store does not know the sandbox's CA
    assert good.ok, good.evidence
    assert "chain verified, issued by golive sandbox CA" in good.evidence and "(89 days)" in good.evidence
    assert not untrusted.ok and "does not verify (unable to get local issuer certificate)" in untrusted.evidence

    with tiny_server({}, wrap=served_with(["other.test"])) as url:
        wrong_name = tls_check(url)
    assert not wrong_name.ok and "Hostname mismatch" in wrong_name.evidence

    with tiny_server({}, wrap=served_with([DOMAIN, f"*.{DOMAIN}"], not_after=now - datetime.timedelta(days=1))) as url:
        expired = tls_check(url)
    assert not expired.ok and "does not verify (certificate has expired)" in expired.evidence

    with tiny_server({}, wrap=served_with([DOMAIN, f"www.{DOMAIN}"], not_after=now + datetime.timedelta(days=5))) as url:
        short = tls_check(url)
    assert not short.ok
    assert f"does not cover api.{DOMAIN}" in short.evidence and "expires in 4 days (under 14)" in short.evidence
