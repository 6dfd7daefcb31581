"""Probes of the site, shared by the launch gate (8.1), the cutover (8.2) and the monitoring (8.3).

Mechanism only: where a request goes and what came back. What a check expects (policy) lives with the
check (golive/launch_checks.py, tasks/cutover_checks.py, flows/post_launch_monitoring.py); every check
returns the one result type here, `Check`.

Where a request goes (`Endpoint`). A probe always speaks to the site by its own names: the URL, the Host
header and the TLS name (SNI, and the name the certificate is verified against) are the site's
(https://<domain>). What differs is the address dialled:

- before the cutover, the new stack: CloudFront's domain (dxxx.cloudfront.net), never the domain's
  current DNS answer, which is still the previous site (or nothing on a first launch);
- after it, the domain itself, through DNS, as a visitor reaches it;
- the ALB directly, only to prove it refuses what did not come through CloudFront.

`dial` is the one place that turns a name into an address. In AWS that is the system's resolver and port
443 (80 for http). In the sandbox it is the sandbox's DNS server (which answers from moto's Route 53
zones) and the loopback port of the listener that serves the answer's name (golive/sandbox/edge.py);
certificates are verified against the sandbox's CA instead of the system's store. The checks' code is
the same either way.
"""

from __future__ import annotations

import ssl
import time
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from golive.run import Run

TIMEOUT_SECONDS = 10.0


class Check(BaseModel):
    """One check's verdict: ok True (passed), False (failed) or None (pending: not observable here, the
    evidence says why; never summarised as a pass), with what was asked and what came back."""

    name: str
    ok: bool | None
    evidence: str
    gate: bool = True  # the cutover rolls back on a failed gate; a failed non-gate is reported only


class Endpoint(BaseModel):
    """Where a probe reaches the site, and how."""

    url: str  # https://<site name>, no trailing slash: the URL, Host header and TLS name of every request
    headers: dict[str, str] = {}
    via: str  # what answers, for people: "CloudFront dxxx.cloudfront.net", "DNS", ...
    connect_to: str | None = None  # a name (or name:port) dialled instead of the URL's host (CloudFront's, the ALB's)
    dns_server: str | None = None  # "127.0.0.1:PORT": the sandbox's DNS server; None: the system's resolver
    ca_file: str | None = None  # the sandbox's CA; None: the system's trust store

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def at(self, host: str) -> "Endpoint":
        """The same route for another of the site's names (api.<domain>, say)."""
        parts = urlsplit(self.url)
        return self.model_copy(update={"url": f"{parts.scheme}://{host}"})


class Probe(BaseModel):
    """One timed request and its answer."""

    url: str
    status: int | None
    ms: float
    error: str = ""
    location: str = ""
    dialled: str = ""  # the address the request went to, for the evidence

    @property
    def ok(self) -> bool:
        return self.status == 200

    def show(self) -> str:
        if self.status is None:
            return f"{self.error} ({self.ms:.0f} ms)"
        return f"{self.status}" + (f" to {self.location}" if self.location else "") + f" in {self.ms:.0f} ms"


class NotServed(OSError):
    """The name resolves to nothing that serves it (a sandbox name no listener stands for)."""


def sandbox_resolve(dns_server: str, name: str) -> tuple[list[str], str | None]:
    """Ask the sandbox's DNS server for name's A record: (the chain of names it answered, the address)."""
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    address, port = dns_server.rsplit(":", 1)
    reply = dns.query.udp(dns.message.make_query(name, "A"), address, port=int(port), timeout=5)
    chain, found = [name.rstrip(".").lower()], None
    if reply.rcode() != dns.rcode.NOERROR:
        raise NotServed(f"{name}: the sandbox's DNS answers {dns.rcode.to_text(reply.rcode())}")
    for rrset in reply.answer:
        for item in rrset:
            if rrset.rdtype == dns.rdatatype.CNAME:
                chain.append(item.target.to_text().rstrip(".").lower())
            elif rrset.rdtype == dns.rdatatype.A:
                found = item.address
    return chain, found


def dial(endpoint: Endpoint, host: str, scheme: str = "https", port: int | None = None) -> tuple[str, int, str]:
    """(address, port, how) of a request to host through this endpoint. The one place names become
    addresses: AWS's resolver and the standard ports, or the sandbox's DNS server and edge listeners."""
    name = endpoint.connect_to if endpoint.connect_to and host == endpoint.host else host
    if ":" in name:  # name:port, a test server standing in for the stack
        name, explicit = name.rsplit(":", 1)
        port = int(explicit)
    if endpoint.dns_server is None:
        return name, port or (443 if scheme == "https" else 80), name
    from golive.sandbox.edge import local_port

    chain, address = sandbox_resolve(endpoint.dns_server, name)
    port = local_port(chain[-1], scheme)  # the URL's port means nothing here: each name has its listener
    if address is None or port is None:
        raise NotServed(f"{' -> '.join(chain)}: nothing in the sandbox serves {chain[-1]} over {scheme}")
    return address, port, " -> ".join(chain)


class _DialingTransport(httpx.BaseTransport):
    """Sends each request to dial()'s address with the site's name as the TLS name (SNI) and Host."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        verify = ssl.create_default_context(cafile=endpoint.ca_file) if endpoint.ca_file else True
        self.inner = httpx.HTTPTransport(verify=verify, trust_env=endpoint.dns_server is None)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host, scheme = request.url.host, request.url.scheme
        address, port, how = dial(self.endpoint, host, scheme, request.url.port)
        request.url = request.url.copy_with(host=address, port=port)
        request.extensions = {**request.extensions, "sni_hostname": host}
        request.extensions["golive_dialled"] = how
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def client(endpoint: Endpoint, *, headers: dict[str, str] | None = None) -> httpx.Client:
    """An HTTP client for the endpoint: its headers, no redirects followed (they are answers to look at),
    certificates verified (against the sandbox's CA there) with the site's name."""
    return httpx.Client(headers=endpoint.headers if headers is None else headers, follow_redirects=False,
                        timeout=TIMEOUT_SECONDS, transport=_DialingTransport(endpoint))


def probe(endpoint: Endpoint, path: str = "/health/", *, scheme: str = "https") -> Probe:
    """One timed GET of the site's path through the endpoint. Errors (refused, TLS, name) are answers."""
    url = f"{scheme}://{endpoint.host}{path}"
    started = time.perf_counter()
    try:
        with client(endpoint) as http:
            response = http.get(url)
    except (httpx.HTTPError, OSError) as error:
        cause = error.__cause__ or error.__context__ or error
        return Probe(url=url, status=None, ms=(time.perf_counter() - started) * 1000,
                     error=f"{type(error).__name__}: {cause}")
    return Probe(url=url, status=response.status_code, ms=(time.perf_counter() - started) * 1000,
                 location=response.headers.get("location", ""))


# ---------------------------------------------------------------------------------------------------
# The routes a phase probes


def _sandbox_routing(run: Run) -> dict:
    if not run.target.is_sandbox:
        return {}
    from golive.sandbox import edge

    state = edge.status()
    if not state["dns_server"] or not all(state["edge"].values()):
        from golive.dataplane import DataPlaneNotRunning

        raise DataPlaneNotRunning("the sandbox's DNS server and edge listeners are not running: start them with "
                                  "`golive sandbox up`")
    return {"dns_server": state["dns_server"], "ca_file": state["ca_file"]}


def site_endpoint(run: Run, host: str | None = None) -> Endpoint:
    """The site as visitors reach it: https://<domain> through DNS (after the cutover)."""
    return Endpoint(url=f"https://{host or run.environment.domain}", via="DNS", **_sandbox_routing(run))


def new_stack_endpoint(run: Run, host: str | None = None) -> Endpoint:
    """The new stack before DNS points at it: the site's names (Host and SNI) at CloudFront's domain."""
    from tasks.cutover_target import find_distribution

    found = find_distribution(run)
    if found is None:
        raise LookupError(f"no CloudFront distribution for {run.env_name}: apply Phase 4 (cdn) first")
    domain = found.domain_name
    return Endpoint(url=f"https://{host or run.environment.domain}", via=f"CloudFront {domain}",
                    connect_to=domain, **_sandbox_routing(run))


def alb_endpoint(run: Run, host: str | None = None) -> Endpoint:
    """The ALB straight, as someone going around CloudFront would reach it (no origin header)."""
    from tasks.load_balancer import LoadBalancer

    lb = LoadBalancer(run, "alb")._find()
    if lb is None:
        raise LookupError(f"no load balancer for {run.env_name}: apply Phase 3 (ecs) first")
    return Endpoint(url=f"https://{host or run.environment.domain}", via=f"the ALB {lb['DNSName']} directly",
                    connect_to=lb["DNSName"], **_sandbox_routing(run))


# Where names are answered and asked, by target: the zone's Route 53 servers and public resolvers in AWS;
# the sandbox's DNS server (over UDP and TCP) on this machine. The cutover's DNS checks take these.
PUBLIC_RESOLVERS = {"Google 8.8.8.8": ("8.8.8.8", 53), "Cloudflare 1.1.1.1": ("1.1.1.1", 53), "Quad9 9.9.9.9": ("9.9.9.9", 53)}


def system_addresses(name: str) -> set[str]:
    import socket

    try:
        return {info[4][0] for info in socket.getaddrinfo(name, 443, socket.AF_INET, socket.SOCK_STREAM)}
    except OSError:
        return set()


def authoritative_servers(run: Run, zone_id: str | None) -> list[tuple[str, int]]:
    """Where the zone is answered: the sandbox's DNS server, or the zone's Route 53 name servers."""
    if run.target.is_sandbox:
        from golive.sandbox.edge import status

        address, port = status()["dns_server"].rsplit(":", 1)
        return [(address, int(port))]
    servers = run.client("route53").get_hosted_zone(Id=zone_id)["DelegationSet"]["NameServers"]
    return [(sorted(system_addresses(s))[0], 53) for s in servers[:2] if system_addresses(s)]


def new_addresses(run: Run, layout) -> dict[str, set[str]]:
    """The new target's addresses as a resolver sees them (AWS: an alias answers with them)."""
    if run.target.is_sandbox:
        return {}  # the sandbox's answers name their target (golive/sandbox/dns_server.py)
    return {n.name: system_addresses(n.new.alias_name) for n in layout.names if n.new is not None and n.new.is_alias}


def resolver_locations(run: Run) -> dict[str, tuple[tuple[str, int], bool]]:
    """label -> (server, over TCP): public resolvers in AWS; the sandbox's DNS server over UDP and TCP."""
    if not run.target.is_sandbox:
        return {label: (server, False) for label, server in PUBLIC_RESOLVERS.items()}
    server = authoritative_servers(run, None)[0]
    return {f"sandbox DNS {server[0]}:{server[1]} over UDP": (server, False),
            f"sandbox DNS {server[0]}:{server[1]} over TCP": (server, True)}
