"""Plan 8.1, pre-launch checks: every check passes on the sandbox's app in its production posture, and
each one fails, saying why, against a server that gets that one thing wrong."""

from __future__ import annotations

import time

import pytest

from golive.dataplane import Endpoint
from golive.launch_checks import (
    check_acm_certificate,
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
from golive.resource import ensure
from tasks.dns import Certificate
from tests.apphelpers import make_test_ca_and_certificate, seeded_app, tiny_server
from tests.conftest import prepare

DOMAIN = "sandbox.precedentum.test"


@pytest.fixture(scope="module")
def launched(sandbox):
    """The app, seeded, and the environment's ACM certificate requested before the app starts (moto
    issues it a couple of seconds later, while the app starts). The checks only read: one app for all."""
    with seeded_app(sandbox, before_start=lambda: ensure(Certificate(prepare("sandbox"), "certificate"))) as endpoint:
        yield prepare("sandbox"), endpoint


def test_every_launch_check_passes_on_the_sandbox_app(launched):
    run, endpoint = launched
    deadline = time.monotonic() + 10  # moto's ACM issues after MOTO_ACM_VALIDATION_WAIT (2 s in the sandbox)
    while (results := run_launch_checks(run, endpoint)) and not results[-1].ok and time.monotonic() < deadline:
        time.sleep(0.5)

    assert [r.name for r in results] == ["https-redirect", "hsts", "security-headers", "debug-off", "admin-login",
                                         "api-smoke", "frontend-smoke", "health", "tls"]
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    evidence = {r.name: r.evidence for r in results}
    assert "without X-Forwarded-Proto -> 301 to https://127.0.0.1:" in evidence["https-redirect"]
    assert "includeSubDomains" in evidence["hsts"]
    assert "/static/app.js 200" in evidence["frontend-smoke"] and "300 cases" in evidence["api-smoke"]
    assert evidence["tls"].startswith("sandbox: the local app has no TLS listener, so the certificate was read from ACM")
    assert f"www.{DOMAIN}" in evidence["tls"] and "ISSUED" in evidence["tls"]


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
        assert not redirect.ok and f"GET {url}/ -> 200: expected a 301 to https://" in redirect.evidence
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
    results = run_launch_checks(run, nowhere)
    assert all(not r.ok and "ConnectError" in r.evidence for r in results if r.name != "tls")


def test_the_tls_handshake_checks_chain_names_and_expiry(tmp_path):
    names = [DOMAIN, f"www.{DOMAIN}", f"api.{DOMAIN}"]
    server, trusting = make_test_ca_and_certificate(tmp_path, [DOMAIN, f"*.{DOMAIN}"], days=90)
    with tiny_server({}, wrap=server) as url:
        port = int(url.rsplit(":", 1)[1])
        good = check_tls_handshake(DOMAIN, names, port=port, connect_to="127.0.0.1", context=trusting)
        untrusted = check_tls_handshake(DOMAIN, names, port=port, connect_to="127.0.0.1")  # the system's CAs
        wrong_host = check_tls_handshake("other.test", ["other.test"], port=port, connect_to="127.0.0.1",
                                         context=trusting)
    assert good.ok, good.evidence
    assert "chain verified, issued by golive tests" in good.evidence and "(89 days)" in good.evidence
    assert not untrusted.ok and "does not verify (unable to get local issuer certificate)" in untrusted.evidence
    assert not wrong_host.ok and "Hostname mismatch" in wrong_host.evidence

    (tmp_path / "short").mkdir()
    server, trusting = make_test_ca_and_certificate(tmp_path / "short", [DOMAIN, f"www.{DOMAIN}"], days=5)
    with tiny_server({}, wrap=server) as url:
        short = check_tls_handshake(DOMAIN, names, port=int(url.rsplit(":", 1)[1]), connect_to="127.0.0.1",
                                    context=trusting)
    assert not short.ok
    assert f"does not cover api.{DOMAIN}" in short.evidence and "expires in 4 days (under 14)" in short.evidence


def test_the_sandbox_tls_check_fails_without_an_acm_certificate(launched):
    """An environment whose Phase 1 has not run (only the sandbox environment's certificate exists)."""
    result = check_acm_certificate(prepare("production"))
    assert not result.ok and "no certificate tagged for environment production" in result.evidence
    assert "golive apply production" in result.evidence
