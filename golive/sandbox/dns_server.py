"""The sandbox's DNS: a server on 127.0.0.1 (UDP and TCP) that answers from moto's Route 53 hosted zones.

moto stores record sets and serves no DNS. This server reads the zones through moto's API at every query
and answers as Route 53's name servers would, so propagation and the cutover's weighted shift are
checked by real DNS queries:

- simple records answer their values; a CNAME is followed when its target is a name the server knows;
- weighted record sets of one name and type: each answer picks one set at random in proportion to the
  weights (a set at weight 0 only when all are 0), as Route 53 does;
- an alias answers as Route 53 would with one difference a reader can see: Route 53 flattens an alias
  into its target's addresses, this server answers a CNAME to the target's name first, so that an
  answer shows which target it came from (CloudFront, the ALB, another record);
- AWS names of the sandbox's edge (*.cloudfront.net, *.elb.amazonaws.com) and *.localhost (the
  previous site) answer 127.0.0.1, where their listeners are (edge.local_port says which port);
- anything else: NXDOMAIN (the sandbox has no upstream resolver).

Health checks are not evaluated (moto reports every check healthy); TTLs are the records'.
"""

from __future__ import annotations

import random
import socketserver
import struct
import sys
import threading
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from golive.aws_errors import aws_error
from golive.sandbox.services import HOST, Service

EDGE_SUFFIXES = (".cloudfront.net", ".elb.amazonaws.com", ".localhost")
EDGE_TTL = 60
MAX_CHAIN = 8


def _route53():
    from golive.sandbox.edge import _client

    return _client("route53")


def _host(name: str) -> str:
    return name.rstrip(".").lower()


def _zones() -> list[tuple[str, str]]:
    """(zone name, id) of every hosted zone in moto, longest name first."""
    pages = _route53().get_paginator("list_hosted_zones").paginate()
    found = [(_host(z["Name"]), z["Id"]) for page in pages for z in page["HostedZones"]]
    return sorted(found, key=lambda z: -len(z[0]))


def _zone_of(name: str, zones: list[tuple[str, str]]) -> tuple[str, str] | None:
    return next(((zone, zone_id) for zone, zone_id in zones if name == zone or name.endswith("." + zone)), None)


def records_at(name: str) -> tuple[bool, list[dict]]:
    """(whether a zone holds the name's domain, the record sets of that name). The zones are read once a
    second (and again on a miss); the records at every query, so a change answers at once."""
    from golive.sandbox.edge import ZONES

    route53 = _route53()
    for fresh in (False, True):
        found = _zone_of(name, ZONES.get(fresh=fresh))
        if found is None:
            continue
        try:
            pages = route53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=found[1])
            return True, [r for page in pages for r in page["ResourceRecordSets"] if _host(r["Name"]) == name]
        except aws_error("NoSuchHostedZone"):
            continue  # deleted since the zones were read: read them again
    return False, []


def pick(records: list[dict]) -> dict | None:
    """One record set of a name and type: the simple one, or a weighted pick in proportion."""
    if not records:
        return None
    weighted = [r for r in records if "Weight" in r]
    if not weighted:
        return records[0]
    weights = [r["Weight"] for r in weighted]
    if sum(weights) == 0:
        return random.choice(weighted)
    return random.choices(weighted, weights=weights)[0]


def resolve(name: str, rdtype: str) -> tuple[int, list[tuple[str, str, int, str]]]:
    """(rcode, [(owner, type, ttl, value)]) for a query, following CNAMEs and aliases."""
    answers: list[tuple[str, str, int, str]] = []
    name = _host(name)
    for _ in range(MAX_CHAIN):
        if name.endswith(EDGE_SUFFIXES):
            if rdtype == "A":
                answers.append((name, "A", EDGE_TTL, HOST))
            return dns.rcode.NOERROR, answers
        authoritative, records = records_at(name)
        if not authoritative:
            return (dns.rcode.NOERROR if answers else dns.rcode.NXDOMAIN), answers
        by_type: dict[str, list[dict]] = {}
        for record in records:
            by_type.setdefault(record["Type"], []).append(record)
        chosen = pick(by_type.get("CNAME", [])) if rdtype != "CNAME" and "CNAME" in by_type else pick(by_type.get(rdtype, []))
        if chosen is None:
            rcode = dns.rcode.NOERROR if (records or answers) else dns.rcode.NXDOMAIN
            return rcode, answers
        alias = chosen.get("AliasTarget")
        if alias:
            target = _host(alias["DNSName"])
            answers.append((name, "CNAME", EDGE_TTL, target))
            name = target
            continue
        values = [v["Value"] for v in chosen.get("ResourceRecords", [])]
        if chosen["Type"] == "CNAME" and rdtype != "CNAME":
            answers.append((name, "CNAME", chosen.get("TTL", 300), _host(values[0])))
            name = _host(values[0])
            continue
        answers += [(name, chosen["Type"], chosen.get("TTL", 300), v) for v in values]
        return dns.rcode.NOERROR, answers
    return dns.rcode.SERVFAIL, answers


def answer(wire: bytes) -> bytes:
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    question = query.question[0]
    try:
        rcode, answers = resolve(question.name.to_text(), dns.rdatatype.to_text(question.rdtype))
    except Exception:  # moto unreachable
        rcode, answers = dns.rcode.SERVFAIL, []
    response.set_rcode(rcode)
    for owner, kind, ttl, value in answers:
        text = value if kind != "CNAME" else value.rstrip(".") + "."
        response.answer.append(dns.rrset.from_text(owner + ".", ttl, dns.rdataclass.IN, kind, text))
    return response.to_wire()


class _Udp(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(answer(data), self.client_address)


class _Tcp(socketserver.StreamRequestHandler):
    def handle(self):
        size = struct.unpack("!H", self.rfile.read(2))[0]
        reply = answer(self.rfile.read(size))
        self.wfile.write(struct.pack("!H", len(reply)) + reply)


class _ThreadingUdp(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True
    allow_reuse_address = True


class _ThreadingTcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _answers_queries(port: int) -> bool:
    import dns.query

    try:
        dns.query.udp(dns.message.make_query("golive-ready.localhost", "A"), HOST, port=port, timeout=0.5)
        return True
    except Exception:
        return False


DNS = Service(name="dns", marker="golive.sandbox.dns_server", ready=_answers_queries,
              cwd=Path(__file__).resolve().parents[2],  # `python -m golive...` runs this checkout's code
              argv=lambda port: [sys.executable, "-m", "golive.sandbox.dns_server", str(port)],
              extra=lambda port: {"address": HOST, "port": port})


def main(argv: list[str]) -> None:
    port = int(argv[0])
    udp, tcp = _ThreadingUdp((HOST, port), _Udp), _ThreadingTcp((HOST, port), _Tcp)
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    udp.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
