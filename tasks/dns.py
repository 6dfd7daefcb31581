"""Plan section 1.6, domain and TLS: the Route 53 hosted zone, the ACM certificate for the apex and its
subdomains, the DNS records that validate it, and a bounded wait for ISSUED.

A zone that already exists for the domain (made by a person, or by the registrar) is used, never deleted:
only a zone golive created (its CallerReference says so) goes with teardown.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import task

from golive.changes import Action, Change, Record
from golive.generation import client_token
from golive.naming import COMPONENT_TAG, ENVIRONMENT_TAG, PREFIX, resource_name, tag_list
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run


class CertificateNotIssued(RuntimeError):
    pass


def restore_route53_tags(resource: Resource, resource_type: str, resource_id: str) -> None:
    """Route 53 tags in a second call after the create: a run killed between the two left the resource
    untagged (found again by its CallerReference). Add the tags, and say so."""
    route53 = resource.run.client("route53")
    tags = {t["Key"]: t["Value"] for t in route53.list_tags_for_resource(
        ResourceType=resource_type, ResourceId=resource_id)["ResourceTagSet"].get("Tags", [])}
    if tags.get(ENVIRONMENT_TAG) == resource.run.env_name:
        return
    route53.change_tags_for_resource(ResourceType=resource_type, ResourceId=resource_id,
                                     AddTags=tag_list(resource.run.env_name, resource.component))
    resource.run.report(Change(action=Action.UPDATE, kind=resource.kind, name=resource.name, id=resource_id,
                               note="tags restored: a killed run created it and did not tag it"))


def _zone_id(full_id: str) -> str:
    return full_id.rsplit("/", 1)[-1]


class HostedZone(Resource):
    kind = "route53-zone"

    @property
    def route53(self):
        return self.run.client("route53")

    @property
    def domain(self) -> str:
        return self.run.environment.domain

    def _reference_prefix(self) -> str:
        return f"{PREFIX}-{self.run.env_name}-"

    def settle(self, found: Found) -> Found:
        """A zone golive created (its CallerReference says so) that a killed run did not tag: tag it now. A
        zone someone else made is used as found, never tagged."""
        if found.raw.get("CallerReference", "").startswith(self._reference_prefix()):
            restore_route53_tags(self, "hostedzone", found.id)
        return found

    def desired(self) -> dict[str, Any]:
        return {"name": self.domain + ".", "private": False}

    def _find(self) -> dict | None:
        zones = self.route53.list_hosted_zones_by_name(DNSName=self.domain)["HostedZones"]
        matches = [z for z in zones if z["Name"] == self.domain + "." and not z.get("Config", {}).get("PrivateZone")]
        return matches[0] if matches else None

    def discover(self) -> Found | None:
        zone = self._find()
        if zone is None:
            return None
        return Found(id=_zone_id(zone["Id"]), component=self.component, raw=zone,
                     state={"name": zone["Name"], "private": zone.get("Config", {}).get("PrivateZone", False)})

    def create(self) -> str:
        # The reference marks the zone as ours even if the run dies before tagging it (settle() tags it).
        zone = self.route53.create_hosted_zone(
            # golive-ENV-zone-GENERATION (golive/generation.py): Route 53 refuses a reference it has seen.
            Name=self.domain, CallerReference=client_token(self.run, self.component, 128),
            HostedZoneConfig={"Comment": f"Precedentum {self.run.env_name}, managed by golive", "PrivateZone": False},
        )["HostedZone"]
        zone_id = _zone_id(zone["Id"])
        self.route53.change_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id,
                                              AddTags=tag_list(self.run.env_name, self.component))
        return zone_id

    def name_servers(self, zone_id: str) -> list[str]:
        return self.route53.get_hosted_zone(Id=zone_id).get("DelegationSet", {}).get("NameServers", [])

    def delete(self, found: Found) -> None:
        # A zone must be empty but for its own NS and SOA records before it can be deleted.
        zone_id = found.id
        apex = self.route53.get_hosted_zone(Id=zone_id)["HostedZone"]["Name"]
        changes = [
            {"Action": "DELETE", "ResourceRecordSet": record}
            for page in self.route53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id)
            for record in page["ResourceRecordSets"]
            if not (record["Name"] == apex and record["Type"] in ("NS", "SOA"))
        ]
        if changes:
            self.route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
        self.route53.delete_hosted_zone(Id=zone_id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        """Only zones golive made for this environment: by tag, or by the CallerReference it sets."""
        route53 = run.client("route53")
        prefix = f"{PREFIX}-{run.env_name}-"
        found = []
        for page in route53.get_paginator("list_hosted_zones").paginate():
            for zone in page["HostedZones"]:
                zone_id = _zone_id(zone["Id"])
                tags = {t["Key"]: t["Value"] for t in route53.list_tags_for_resource(
                    ResourceType="hostedzone", ResourceId=zone_id)["ResourceTagSet"].get("Tags", [])}
                if tags.get(ENVIRONMENT_TAG) == run.env_name or zone.get("CallerReference", "").startswith(prefix):
                    found.append(Found(id=zone_id, state={}, raw=zone, component=tags.get(COMPONENT_TAG, "zone")))
        return found


class DnsRecord(Resource):
    """One record set in the zone. UPSERT makes create and update the same, safe to repeat."""

    kind = "dns-record"

    def __init__(self, run: Run, component: str, zone_id: str | None = None, record_name: str = "",
                 record_type: str = "CNAME", values: list[str] = (), ttl: int = 300):
        super().__init__(run, component)
        self.zone_id, self.record_name, self.record_type = zone_id, record_name, record_type
        self.values, self.ttl = list(values), ttl
        self.name = f"{record_name} {record_type}"

    @property
    def route53(self):
        return self.run.client("route53")

    def desired(self) -> dict[str, Any]:
        return {"values": sorted(self.values), "ttl": self.ttl}

    def discover(self) -> Found | None:
        if self.zone_id is None:
            return None
        records = self.route53.list_resource_record_sets(
            HostedZoneId=self.zone_id, StartRecordName=self.record_name, StartRecordType=self.record_type, MaxItems="1",
        )["ResourceRecordSets"]
        match = [r for r in records if r["Name"] == self.record_name and r["Type"] == self.record_type]
        if not match:
            return None
        return Found(id=self.name, component=self.component, raw=match[0], state={
            "values": sorted(v["Value"] for v in match[0].get("ResourceRecords", [])), "ttl": match[0].get("TTL")})

    def _upsert(self) -> None:
        self.route53.change_resource_record_sets(HostedZoneId=self.zone_id, ChangeBatch={"Changes": [{
            "Action": "UPSERT", "ResourceRecordSet": {
                "Name": self.record_name, "Type": self.record_type, "TTL": self.ttl,
                "ResourceRecords": [{"Value": v} for v in self.values]}}]})

    def create(self) -> str:
        self._upsert()
        return self.name

    def update(self, found: Found, changes) -> None:
        self._upsert()

    def delete(self, found: Found) -> None:
        self.route53.change_resource_record_sets(HostedZoneId=self.zone_id, ChangeBatch={"Changes": [
            {"Action": "DELETE", "ResourceRecordSet": found.raw}]})


class Certificate(Resource):
    kind = "acm-certificate"
    replace_on = frozenset({"names"})  # a certificate's names are fixed when it is requested
    USABLE = ("PENDING_VALIDATION", "ISSUED")

    @property
    def acm(self):
        return self.run.client("acm")

    def desired(self) -> dict[str, Any]:
        return {"names": sorted(self.run.environment.certificate_names), "validation": "DNS"}

    @classmethod
    def _ours(cls, run: Run) -> list[dict]:
        acm = run.client("acm")
        found = []
        for page in acm.get_paginator("list_certificates").paginate(CertificateStatuses=list(cls.USABLE)):
            for summary in page["CertificateSummaryList"]:
                tags = {t["Key"]: t["Value"] for t in acm.list_tags_for_certificate(
                    CertificateArn=summary["CertificateArn"]).get("Tags", [])}
                if tags.get(ENVIRONMENT_TAG) == run.env_name:
                    found.append({**summary, "component": tags.get(COMPONENT_TAG, "")})
        return found

    def discover(self) -> Found | None:
        mine = [c for c in self._ours(self.run) if c["component"] == self.component]
        if not mine:
            return None
        # Prefer an issued one; several can exist after a replacement that was not cleaned up.
        details = [self.acm.describe_certificate(CertificateArn=c["CertificateArn"])["Certificate"] for c in mine]
        details.sort(key=lambda c: (c["Status"] != "ISSUED", c["CertificateArn"]))
        cert = details[0]
        names = sorted({cert["DomainName"], *cert.get("SubjectAlternativeNames", [])})
        return Found(id=cert["CertificateArn"], component=self.component, raw=cert,
                     state={"names": names, "validation": cert.get("DomainValidationOptions", [{}])[0].get("ValidationMethod", "DNS")})

    def create(self) -> str:
        names = self.run.environment.certificate_names
        return self.acm.request_certificate(
            DomainName=names[0], SubjectAlternativeNames=names[1:], ValidationMethod="DNS",
            # Within an hour, a repeated request (a retried task) returns the same certificate; the generation
            # makes it a new request after a destroy, which would otherwise get the deleted certificate back.
            IdempotencyToken=client_token(self.run, self.component, 32, r"[^a-zA-Z0-9]"),
            Tags=tag_list(self.run.env_name, self.component),
        )["CertificateArn"]

    def delete(self, found: Found) -> None:
        self.acm.delete_certificate(CertificateArn=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        return [Found(id=c["CertificateArn"], state={}, component=c["component"]) for c in cls._ours(run)]


class ZoneRecord(Record):
    domain: str
    name_servers: list[str]
    created: bool  # new zone: its name servers must be set at the registrar


class CertificateRecord(Record):
    names: list[str]
    status: str | None
    validation_records: list[Record] = []


@task(**AWS_STEP)
def ensure_hosted_zone(run: Run) -> ZoneRecord:
    """Find or create the public hosted zone for the environment's domain."""
    zone = HostedZone(run, "zone")
    outcome = ensure(zone)
    servers = zone.name_servers(outcome.id) if outcome.id else []
    return ZoneRecord(name=run.environment.domain, id=outcome.id, change=outcome.change, domain=run.environment.domain,
                      name_servers=servers, created=outcome.change.action.value == "create")


@task(**AWS_STEP)
def ensure_certificate(run: Run, zone: ZoneRecord) -> CertificateRecord:
    """Request the certificate (apex and subdomains) and write its DNS validation records."""
    outcome = ensure(Certificate(run, "certificate"))
    records: list[Record] = []
    status = None
    if outcome.id:
        cert = run.client("acm").describe_certificate(CertificateArn=outcome.id)["Certificate"]
        status = cert["Status"]
        seen = set()
        for option in cert.get("DomainValidationOptions", []):
            record = option.get("ResourceRecord")
            if not record or (record["Name"], record["Type"]) in seen:
                continue  # one CNAME often validates several names
            seen.add((record["Name"], record["Type"]))
            validation = ensure(DnsRecord(run, "acm-validation", zone.id, record["Name"], record["Type"], [record["Value"]]))
            records.append(Record(name=f"{record['Name']} {record['Type']}", id=validation.id, change=validation.change))
    return CertificateRecord(name=resource_name(run.env_name, "certificate"), id=outcome.id, change=outcome.change,
                             names=run.environment.certificate_names, status=status, validation_records=records)


@task(**AWS_STEP)
def wait_certificate_issued(run: Run, certificate: CertificateRecord) -> CertificateRecord:
    """Wait, within the file's bound, for ACM to issue the certificate (minutes in AWS once DNS resolves)."""
    if not run.applying or certificate.status == "ISSUED" or certificate.id is None:
        return certificate
    delay = run.poll_delay(30)
    minutes = run.environment.dns.certificate_wait_minutes
    acm = run.client("acm")
    deadline = time.monotonic() + minutes * 60
    status = certificate.status
    while time.monotonic() < deadline:
        status = acm.describe_certificate(CertificateArn=certificate.id)["Certificate"]["Status"]
        if status == "ISSUED":
            return certificate.model_copy(update={"status": status})
        if status not in ("PENDING_VALIDATION",):
            break
        time.sleep(delay)
    raise CertificateNotIssued(
        f"certificate {certificate.id} is {status} after {minutes:g} minutes. If the zone is new, set its name servers "
        "at the registrar; then run apply again (the wait resumes). dns.certificate_wait_minutes sets the bound.")


TEARDOWN_ORDER: list[type[Resource]] = [Certificate, HostedZone]
