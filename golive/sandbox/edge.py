"""The sandbox's edge: local listeners that serve traffic the way the ALB and CloudFront moto stores would.

moto keeps load balancers and distributions as records and serves no traffic. These processes (one per
role, started by `golive sandbox up`, on 127.0.0.1) read those records from moto's API as they are now
and act on them, so the launch is rehearsed over real TLS and HTTP:

- alb        the HTTPS listener: presents the listener's ACM certificate (mirrored by tls.py, chosen by
             SNI among the ALBs' listeners), evaluates the listener's rules in priority order (host-header,
             path-pattern and http-header conditions; forward, fixed-response and redirect actions) and
             forwards to the target group's service, which is the sandbox's local app (no Fargate tasks),
             adding X-Forwarded-Proto/For as an ALB does;
- alb-http   the ALB's port-80 listener: its default action (the redirect to HTTPS);
- cloudfront the distribution's viewer side: its ACM certificate for the aliases (a *.cloudfront.net
             certificate for its own name), the cache behaviour matching the path, and its origin: the ALB
             over HTTPS, verifying the ALB's certificate against the name CloudFront would use (the
             viewer's Host when the origin request policy forwards it, else the origin's domain name: a
             mismatch answers 502 as CloudFront does) and adding the origin's custom headers; or the
             static bucket, read from moto's S3;
- cloudfront-http  redirect-to-https for viewers on HTTP;
- previous   "the site before the launch": answers every path with a page that says so, over TLS with a
             certificate for whatever name it is asked (the old site had its own).

What it does not emulate: caching (every request reaches the origin), WAF, CloudFront's edge network
and its addresses, target health (the target group's service is the local app, whether or not ECS
thinks its tasks run), connection draining, HTTP/2 and 3.

Which listener serves an AWS name is decided in one place, `local_port`: *.cloudfront.net is the
CloudFront listener, *.elb.amazonaws.com the ALB's, *.localhost the previous site.
"""

from __future__ import annotations

import functools
import http.client
import json
import re
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from golive.aws_errors import aws_error
from golive.sandbox.services import HOST, Service

ROLES = ("alb", "alb-http", "cloudfront", "cloudfront-http", "previous")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length"}
CONFIG_SECONDS = 1.0  # how long a read of moto's configuration is reused (an ALB applies changes within seconds)
PREVIOUS_SITE_HEADER = "X-Golive-Previous-Site"
REGION = "us-east-1"


# ---------------------------------------------------------------------------------------------------
# Which local listener answers for an AWS name (the one place; probes.py uses it too)


PROJECT_DIR = Path(__file__).resolve().parents[2]  # `python -m golive...` runs this checkout's code


def service(role: str) -> Service:
    return Service(name=f"edge-{role}", marker=f"golive.sandbox.edge {role} ", cwd=PROJECT_DIR,
                   argv=lambda port, role=role: [sys.executable, "-m", "golive.sandbox.edge", role, str(port), "--"],
                   extra=lambda port: {"url": f"{'http' if role.endswith('-http') else 'https'}://{HOST}:{port}"})


SERVICES = {role: service(role) for role in ROLES}


def role_for(name: str, scheme: str = "https") -> str | None:
    name = name.rstrip(".").lower()
    if name.endswith(".cloudfront.net"):
        role = "cloudfront"
    elif name.endswith(".elb.amazonaws.com"):
        role = "alb"
    elif name.endswith(".localhost"):
        role = "previous"
    else:
        return None
    return f"{role}-http" if scheme == "http" and role != "previous" else role


def local_port(name: str, scheme: str = "https") -> int | None:
    """The loopback port of the listener that serves this AWS name in the sandbox, or None."""
    role = role_for(name, scheme)
    state = SERVICES[role].read() if role else None
    return state["port"] if state else None


# ---------------------------------------------------------------------------------------------------
# moto's configuration, read as it is now


@functools.lru_cache(maxsize=None)
def _client(service_name: str):
    """One client per service for the process (boto3 clients are thread-safe; making one costs ~10 ms)."""
    import boto3

    from golive.aws import SANDBOX_CREDENTIALS
    from golive.sandbox.control_plane import endpoint_url

    return boto3.client(service_name, endpoint_url=endpoint_url(), region_name=REGION, **SANDBOX_CREDENTIALS)


class Cached:
    """A value read from moto, reused for CONFIG_SECONDS."""

    def __init__(self, read):
        self.read, self.value, self.at, self.lock = read, None, 0.0, threading.Lock()

    def get(self, fresh: bool = False):
        with self.lock:
            if fresh or time.monotonic() - self.at > CONFIG_SECONDS:
                self.value, self.at = self.read(), time.monotonic()
            return self.value


def _lookup(cache: Cached, find):
    """find(items) on the cached read; on a miss, once more on a fresh read (a resource made just now)."""
    return find(cache.get()) or find(cache.get(fresh=True))


_CONTEXTS: dict[tuple, ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def mirrored_context(certificate_arn: str | None = None, names: list[str] | None = None) -> ssl.SSLContext:
    """A server context presenting the ACM certificate's names and expiry (or these names), made once."""
    from golive.sandbox import tls

    key = (certificate_arn, tuple(names or ()))
    with _CONTEXTS_LOCK:
        if key not in _CONTEXTS:
            not_after = None
            if certificate_arn:
                described = _client("acm").describe_certificate(CertificateArn=certificate_arn)["Certificate"]
                names = list(dict.fromkeys([described["DomainName"], *described.get("SubjectAlternativeNames", [])]))
                not_after = described.get("NotAfter")
            _CONTEXTS[key] = tls.server_context(names, not_after=not_after)
        return _CONTEXTS[key]


def covers(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def _albs() -> list[dict]:
    """Every ALB with its listeners (by port) and the HTTPS listener's rules and certificate names."""
    elb, acm = _client("elbv2"), _client("acm")
    found = []
    for lb in elb.describe_load_balancers()["LoadBalancers"]:
        listeners = {l["Port"]: l for l in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]}
        https = listeners.get(443)
        rules, certificate, names = [], None, []
        if https:
            rules = sorted(elb.describe_rules(ListenerArn=https["ListenerArn"])["Rules"],
                           key=lambda r: (r["IsDefault"], int(r["Priority"]) if r["Priority"].isdigit() else 0))
            certificate = next((c["CertificateArn"] for c in https.get("Certificates", [])), None)
            if certificate:
                described = acm.describe_certificate(CertificateArn=certificate)["Certificate"]
                names = [described["DomainName"], *described.get("SubjectAlternativeNames", [])]
        groups = {tg["TargetGroupArn"]: tg for tg in elb.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])
                  .get("TargetGroups", [])} if listeners else {}
        found.append({"lb": lb, "listeners": listeners, "rules": rules, "certificate": certificate,
                      "names": names, "target_groups": groups})
    return found


def _distributions() -> list[dict]:
    cloudfront = _client("cloudfront")
    items = cloudfront.list_distributions()["DistributionList"].get("Items", [])
    return [{"summary": d, "config": cloudfront.get_distribution_config(Id=d["Id"])["DistributionConfig"]} for d in items]


def _zones():
    from golive.sandbox.dns_server import _zones as read

    return read()


ALBS = Cached(_albs)
ZONES = Cached(_zones)
DISTRIBUTIONS = Cached(_distributions)


# ---------------------------------------------------------------------------------------------------
# Listener rules, as the ALB evaluates them


def aws_wildcard_matches(value: str, pattern: str, case_sensitive: bool) -> bool:
    """An ALB condition value or a CloudFront path pattern: '*' (any run of characters) and '?' (one character) are its only wildcards;
    every other character, '[' and ']' included, stands for itself (fnmatch would read '[...]' as a class,
    and refuse a secret header value that happens to hold brackets)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _condition_matches(condition: dict, host: str, path: str, headers) -> bool:
    # AWS: host-header and http-header values compare case-insensitively, path patterns case-sensitively.
    field = condition["Field"]
    if field == "host-header":
        values = condition.get("HostHeaderConfig", {}).get("Values") or condition.get("Values", [])
        return any(aws_wildcard_matches(host, v, case_sensitive=False) for v in values)
    if field == "path-pattern":
        values = condition.get("PathPatternConfig", {}).get("Values") or condition.get("Values", [])
        return any(aws_wildcard_matches(path, v, case_sensitive=True) for v in values)
    if field == "http-header":
        config = condition["HttpHeaderConfig"]
        value = headers.get(config["HttpHeaderName"])
        return value is not None and any(aws_wildcard_matches(value, v, case_sensitive=False) for v in config["Values"])
    return False  # a condition the sandbox does not evaluate matches nothing, rather than everything


def choose_rule(rules: list[dict], host: str, path: str, headers) -> dict | None:
    """The first rule (by priority, the default last) whose every condition matches."""
    for rule in rules:
        if all(_condition_matches(c, host, path, headers) for c in rule.get("Conditions", [])):
            return rule
    return None


def redirect_location(config: dict, host: str, path: str, query: str) -> str:
    scheme = config.get("Protocol", "#{protocol}").replace("#{protocol}", "https").lower()
    target_host = config.get("Host", "#{host}").replace("#{host}", host)
    port = config.get("Port", "#{port}").replace("#{port}", "443")
    target_path = config.get("Path", "/#{path}").replace("#{path}", path.lstrip("/"))
    target_query = config.get("Query", "#{query}").replace("#{query}", query)
    default = {"https": "443", "http": "80"}[scheme]
    return f"{scheme}://{target_host}{'' if port == default else ':' + port}{target_path}" + (
        f"?{target_query}" if target_query else "")


# ---------------------------------------------------------------------------------------------------
# HTTP plumbing


_UPSTREAM = threading.local()


def forward(method: str, host: str, port: int, path: str, headers: list[tuple[str, str]], body: bytes,
            tls: ssl.SSLContext | None = None, server_hostname: str | None = None) -> tuple[int, list, bytes]:
    """One request upstream over a kept-alive connection of this thread; (status, headers, body)."""
    key = (host, port, server_hostname, id(tls))
    connections = getattr(_UPSTREAM, "connections", None)
    if connections is None:
        connections = _UPSTREAM.connections = {}
    for attempt in (1, 2):
        connection = connections.get(key)
        if connection is None:
            if tls is None:
                connection = http.client.HTTPConnection(host, port, timeout=30)
            else:
                connection = _SniConnection(host, port, timeout=30, context=tls, server_hostname=server_hostname)
            connections[key] = connection
        try:
            connection.request(method, path, body=body or None, headers=dict(headers))
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            connection.close()
            connections.pop(key, None)
            if attempt == 2:
                raise
        except Exception:
            connection.close()
            connections.pop(key, None)
            raise
    raise AssertionError("unreachable")


class _SniConnection(http.client.HTTPSConnection):
    """HTTPS to a loopback port, with the TLS name (SNI and verification) of the AWS name it stands for."""

    def __init__(self, *args, server_hostname: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.server_hostname = server_hostname

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_hostname or self.host)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "golive-sandbox-edge"
    role = ""
    # Headers and body go out in two writes: with Nagle's algorithm the body waits for the peer's delayed
    # ACK of the headers (tens of milliseconds on every response).
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # access logs would grow without bound under the load test

    def reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP and name.lower() not in ("server", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def text(self, status: int, message: str, extra: list[tuple[str, str]] = ()) -> None:
        self.reply(status, [("Content-Type", "text/plain; charset=utf-8"), *extra], message.encode())

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    @property
    def host(self) -> str:
        return (self.headers.get("Host") or "").split(":")[0].lower()

    @property
    def sni(self) -> str | None:
        return getattr(self.connection, "golive_sni", None)

    def handle_request(self) -> None:
        raise NotImplementedError

    def _any(self):
        try:
            self.handle_request()
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as error:  # the edge's own failure: a 502, as a proxy would answer
            self.text(502, f"{self.server_version} ({self.role}): {type(error).__name__}: {error}\n")

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _any


def _split(path: str) -> tuple[str, str]:
    parts = urlsplit(path)
    return parts.path or "/", parts.query


# ---------------------------------------------------------------------------------------------------
# The roles


def _app_address() -> tuple[str, int]:
    from golive.sandbox.app import APP

    state = APP.running()
    if state is None:
        raise ConnectionRefusedError("the sandbox's app (the target groups' service) is not running")
    return HOST, state["port"]


def _alb_for(sni: str | None, host: str) -> dict | None:
    name = (sni or host or "").lower()

    def find(items: list[dict]) -> dict | None:
        albs = [a for a in items if 443 in a["listeners"]]
        return (next((a for a in albs if any(covers(n, name) for n in a["names"])), None)
                or next((a for a in albs if a["lb"]["DNSName"].lower() == name), None))

    found = _lookup(ALBS, find)
    if found is None:  # no certificate covers the name: the listener's default certificate answers
        found = next((a for a in ALBS.get() if 443 in a["listeners"]), None)
    return found


class AlbHandler(Handler):
    role = "alb"

    def handle_request(self) -> None:
        alb = _alb_for(self.sni, self.host)
        if alb is None:
            return self.text(503, "no load balancer with an HTTPS listener\n")
        path, query = _split(self.path)
        rule = choose_rule(alb["rules"], self.host, path, self.headers)
        if rule is None:
            return self.text(503, "no rule matched and the listener has no default action\n")
        action = rule["Actions"][0]
        if action["Type"] == "fixed-response":
            config = action["FixedResponseConfig"]
            return self.reply(int(config["StatusCode"]), [("Content-Type", config.get("ContentType", "text/plain"))],
                              (config.get("MessageBody") or "").encode())
        if action["Type"] == "redirect":
            return self.reply(int(action["RedirectConfig"]["StatusCode"].removeprefix("HTTP_")),
                              [("Location", redirect_location(action["RedirectConfig"], self.host, path, query))], b"")
        address, port = _app_address()  # forward: every target group's service is the local app here
        client = self.client_address[0]
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        headers = [h for h in headers if h[0].lower() not in ("x-forwarded-proto", "x-forwarded-port")]
        forwarded_for = self.headers.get("X-Forwarded-For")
        headers = [h for h in headers if h[0].lower() != "x-forwarded-for"] + [
            ("X-Forwarded-For", f"{forwarded_for}, {client}" if forwarded_for else client),
            ("X-Forwarded-Proto", "https"), ("X-Forwarded-Port", "443")]
        self.reply(*forward(self.command, address, port, self.path, headers, self.body()))


class AlbHttpHandler(Handler):
    role = "alb-http"

    def handle_request(self) -> None:
        albs = [a for a in ALBS.get() if 80 in a["listeners"]]
        if not albs:
            return self.text(503, "no load balancer with an HTTP listener\n")
        action = albs[0]["listeners"][80]["DefaultActions"][0]
        path, query = _split(self.path)
        if action["Type"] != "redirect":
            return self.text(502, f"the sandbox's port-80 listener emulates redirects only, not {action['Type']}\n")
        config = action["RedirectConfig"]
        self.reply(int(config["StatusCode"].removeprefix("HTTP_")),
                   [("Location", redirect_location(config, self.host, path, query))], b"")


def _distribution_for(name: str | None) -> dict | None:
    name = (name or "").lower()

    def find(items: list[dict]) -> dict | None:
        for distribution in items:
            aliases = distribution["config"].get("Aliases", {}).get("Items", [])
            if distribution["summary"]["DomainName"].lower() == name or any(covers(a, name) for a in aliases):
                return distribution
        return None

    return _lookup(DISTRIBUTIONS, find) if name else None


def _behaviour(config: dict, path: str) -> dict:
    for behaviour in config.get("CacheBehaviors", {}).get("Items", []):
        if aws_wildcard_matches(path, behaviour["PathPattern"], case_sensitive=True):
            return behaviour
    return config["DefaultCacheBehavior"]


# Managed origin request policies that forward the viewer's Host header (AllViewer and its variants).
HOST_FORWARDING_POLICIES = {"216adef6-5c7f-47e4-b989-5492eafa07d3", "33f36d7e-f396-46d9-90e0-52428a34d9dc"}


class CloudFrontHandler(Handler):
    role = "cloudfront"

    def handle_request(self) -> None:
        distribution = _distribution_for(self.host) or _distribution_for(self.sni)
        if distribution is None:
            return self.text(421, f"no distribution serves {self.host or self.sni}\n")  # CloudFront: 403 "Bad request"
        config = distribution["config"]
        path, _ = _split(self.path)
        behaviour = _behaviour(config, path)
        origin = next(o for o in config["Origins"]["Items"] if o["Id"] == behaviour["TargetOriginId"])
        # moto drops S3OriginConfig from what it stores: a bucket's domain without a custom config is S3.
        if "S3OriginConfig" in origin or ("CustomOriginConfig" not in origin and ".s3." in origin["DomainName"]):
            return self.from_bucket(origin, path)
        forwards_host = behaviour.get("OriginRequestPolicyId") in HOST_FORWARDING_POLICIES
        origin_name = origin["DomainName"]
        tls_name = self.host if forwards_host else origin_name
        port = local_port(origin_name)
        if port is None:
            return self.text(502, f"CloudFront: the origin {origin_name} is not served in the sandbox\n")
        from golive.sandbox import tls

        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}]
        headers += [("Host", tls_name), ("Via", "1.1 golive-sandbox.cloudfront.net (CloudFront)"),
                    ("CloudFront-Forwarded-Proto", "https")]
        headers += [(h["HeaderName"], h["HeaderValue"]) for h in origin.get("CustomHeaders", {}).get("Items", [])]
        try:
            status, answer, body = forward(self.command, HOST, port, self.path, headers, self.body(),
                                           tls=tls.client_context(), server_hostname=tls_name)
        except ssl.SSLCertVerificationError as error:
            return self.text(502, f"CloudFront could not connect to the origin {origin_name} as {tls_name}: the "
                             f"origin's certificate does not verify ({error.verify_message})\n")
        except OSError as error:
            return self.text(502, f"CloudFront could not connect to the origin {origin_name}: {error}\n")
        self.reply(status, answer + [("Via", "1.1 golive-sandbox.cloudfront.net (CloudFront)")], body)

    def from_bucket(self, origin: dict, path: str) -> None:
        bucket = origin["DomainName"].split(".s3.")[0]
        s3 = _client("s3")
        try:
            found = s3.get_object(Bucket=bucket, Key=path.lstrip("/"))
        except aws_error("NoSuchKey", "NoSuchBucket"):
            return self.text(403, "AccessDenied\n")  # what S3 answers an OAC for a missing key
        self.reply(200, [("Content-Type", found.get("ContentType", "binary/octet-stream"))], found["Body"].read())


class CloudFrontHttpHandler(Handler):
    role = "cloudfront-http"

    def handle_request(self) -> None:
        distribution = _distribution_for(self.host)
        if distribution is None:
            return self.text(421, f"no distribution serves {self.host}\n")
        behaviour = _behaviour(distribution["config"], _split(self.path)[0])
        if behaviour["ViewerProtocolPolicy"] == "allow-all":
            return self.text(502, "the sandbox's CloudFront serves HTTP viewers only by redirecting them\n")
        if behaviour["ViewerProtocolPolicy"] == "https-only":
            return self.text(403, "HTTPS only\n")
        self.reply(301, [("Location", f"https://{self.host}{self.path}")], b"")


class PreviousSiteHandler(Handler):
    role = "previous"

    def handle_request(self) -> None:
        body = {"site": "previous", "host": self.host, "path": self.path, "status": "ok"}
        self.reply(200, [("Content-Type", "application/json"), (PREVIOUS_SITE_HEADER, "yes")],
                   json.dumps(body).encode())


HANDLERS = {"alb": AlbHandler, "alb-http": AlbHttpHandler, "cloudfront": CloudFrontHandler,
            "cloudfront-http": CloudFrontHttpHandler, "previous": PreviousSiteHandler}


# ---------------------------------------------------------------------------------------------------
# TLS: the certificate chosen by SNI, as the ALB and CloudFront choose theirs


def _alb_context(name: str | None) -> ssl.SSLContext | None:
    alb = _alb_for(name, "")
    return mirrored_context(alb["certificate"]) if alb and alb["certificate"] else None


def _cloudfront_context(name: str | None) -> ssl.SSLContext | None:
    distribution = _distribution_for(name)
    if distribution is None:
        return None
    if name and name.lower() == distribution["summary"]["DomainName"].lower():
        return mirrored_context(names=["*.cloudfront.net"])  # CloudFront's own certificate for its names
    arn = distribution["config"].get("ViewerCertificate", {}).get("ACMCertificateArn")
    return mirrored_context(arn) if arn else None


def _previous_context(name: str | None) -> ssl.SSLContext:
    return mirrored_context(names=[name or "previous-site.localhost"])


CHOOSERS = {"alb": _alb_context, "cloudfront": _cloudfront_context, "previous": _previous_context}


def tls_server_context(role: str) -> ssl.SSLContext:
    choose = CHOOSERS[role]
    base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    base.minimum_version = ssl.TLSVersion.TLSv1_2

    def on_sni(sock: ssl.SSLObject, name: str | None, _context) -> int | None:
        sock.golive_sni = name
        try:
            chosen = choose(name)
        except Exception:  # moto unreachable: no certificate to present
            chosen = None
        if chosen is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sock.context = chosen
        return None

    base.sni_callback = on_sni
    return base


class EdgeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, role: str):
        super().__init__((HOST, port), HANDLERS[role])
        self.role = role
        self.tls = tls_server_context(role) if role in CHOOSERS else None

    def get_request(self):
        sock, address = super().get_request()
        if self.tls is not None:  # the handshake happens in the request's thread, on first read
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request, client_address):
        pass  # a failed handshake (a probe testing a wrong name) is the client's evidence, not our log's


def main(argv: list[str]) -> None:
    role, port = argv[0], int(argv[1])
    socket.setdefaulttimeout(60)
    EdgeServer(port, role).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])


# ---------------------------------------------------------------------------------------------------
# Lifecycle: `golive sandbox up | status | down`


def _all_services() -> list[Service]:
    from golive.sandbox.dns_server import DNS

    return [DNS, *SERVICES.values()]


def status() -> dict:
    """Where the edge listens: the DNS server and each listener (None when not running)."""
    from golive.sandbox import tls
    from golive.sandbox.dns_server import DNS

    dns_state = DNS.running()
    listeners = {role: (SERVICES[role].running() or {}).get("url") for role in ROLES}
    return {"dns_server": f"{HOST}:{dns_state['port']}" if dns_state else None, "edge": listeners,
            "ca_file": str(tls.ca_file()) if any(listeners.values()) else None}


def up() -> dict:
    """The DNS server and the listeners (they read moto at request time: start them after it)."""
    from golive.sandbox import tls
    from golive.sandbox.services import locked

    tls.ca_file()  # the CA once, before several listeners race to make it
    with locked():
        for item in _all_services():
            item.start()
    return status()


def down() -> dict:
    from golive.sandbox.services import locked

    with locked():
        return {item.name: item.stop() for item in _all_services()}
