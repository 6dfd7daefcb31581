"""Plan section 4.1, CloudFront: one distribution in front of the ALB and the static bucket.

Behaviours, most specific first:
- /static/*  the static bucket through origin access control (the bucket stays private), cached long
  (Managed-CachingOptimized), compressed;
- /assets/*  the frontend's hashed bundles from the ALB, cached long;
- /api/*, /admin/*, /health/ and the default  the ALB, not cached (Managed-CachingDisabled), forwarding
  what Django needs (Managed-AllViewer: Host, cookies, query strings, Authorization). Host is forwarded so
  the ALB's api-host rule sees api.<domain>, and the SPA's index.html is never served stale.
Every behaviour to the ALB forwards the viewer's Host: CloudFront then connects to the ALB with that name
(SNI) and checks the ALB's certificate against it, which covers the site's names; without Host it would
check the certificate against the ALB's own DNS name, which no ACM certificate of ours covers, and answer
502. The ALB origin carries the secret origin header (ORIGIN_HEADER) that the ALB's rules require.
HTTP/2 and HTTP/3, IPv6, TLS 1.2+ with the ACM certificate (CloudFront takes certificates from us-east-1
only: another region is refused before the call), and custom error pages for 502/503/504 from the bucket.

moto drops OriginAccessControlId from what it stores; in the sandbox the origin's OAC is therefore not
compared (it is sent on every create and update).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from prefect import task

from golive.changes import Action, Change, KnownAfterApply, Record, known_after_apply
from golive.generation import client_token
from golive.naming import ENVIRONMENT_TAG, resource_name, tag_list
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.dns import CertificateRecord
from tasks.load_balancer import ORIGIN_HEADER, LoadBalancerRecord, RefusedByAws
from tasks.secrets import fingerprint
from tasks.storage import BucketRecord, bucket_policy, own_statements, put_statements

# AWS-managed policies (fixed ids, the same in every account).
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER = "216adef6-5c7f-47e4-b989-5492eafa07d3"
CLOUDFRONT_ZONE_ID = "Z2FDTNDATAQYW2"  # the hosted zone every CloudFront alias record points into
ERROR_PAGES = (502, 503, 504)
ALL_METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"]
READ_METHODS = ["GET", "HEAD"]


def _items(values: list) -> dict:
    return {"Quantity": len(values), "Items": values}


class OriginAccessControl(Resource):
    """Lets CloudFront (and only this distribution, by the bucket policy) read the private static bucket."""

    kind = "origin-access-control"

    @property
    def cloudfront(self):
        return self.run.client("cloudfront")

    def desired(self) -> dict[str, Any]:
        return {"signing": "always", "origin_type": "s3"}

    @classmethod
    def _all(cls, run: Run) -> list[dict]:
        listing = run.client("cloudfront").list_origin_access_controls()["OriginAccessControlList"]
        return listing.get("Items", [])

    def discover(self) -> Found | None:
        oac = next((o for o in self._all(self.run) if o["Name"] == self.name), None)
        return Found(id=oac["Id"], component=self.component, raw=oac, state={
            "signing": oac["SigningBehavior"], "origin_type": oac["OriginAccessControlOriginType"]}) if oac else None

    def _config(self) -> dict:
        return {"Name": self.name, "Description": f"golive {self.run.env_name}: CloudFront reads the static bucket",
                "SigningProtocol": "sigv4", "SigningBehavior": "always", "OriginAccessControlOriginType": "s3"}

    def create(self) -> str:
        return self.cloudfront.create_origin_access_control(OriginAccessControlConfig=self._config())["OriginAccessControl"]["Id"]

    def update(self, found: Found, changes) -> None:
        etag = self.cloudfront.get_origin_access_control(Id=found.id)["ETag"]
        self.cloudfront.update_origin_access_control(Id=found.id, IfMatch=etag, OriginAccessControlConfig=self._config())

    def delete(self, found: Found) -> None:
        etag = self.cloudfront.get_origin_access_control(Id=found.id)["ETag"]
        self.cloudfront.delete_origin_access_control(Id=found.id, IfMatch=etag)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        prefix = resource_name(run.env_name, "")  # OACs carry no tags; their names are ours alone
        return [Found(id=o["Id"], state={}, raw=o, component=o["Name"].removeprefix(prefix))
                for o in cls._all(run) if o["Name"].startswith(prefix)]


class Distribution(Resource):
    """Found by its Comment (our deterministic name) and confirmed by its environment tag."""

    kind = "cloudfront-distribution"

    def __init__(self, run: Run, component: str = "cdn", alb: LoadBalancerRecord | None = None,
                 static_bucket: BucketRecord | None = None, oac_id: str | None = None,
                 certificate: CertificateRecord | None = None, origin_value: str | None = None):
        super().__init__(run, component)
        self.alb, self.static_bucket, self.oac_id, self.certificate = alb, static_bucket, oac_id, certificate
        self.origin_value = origin_value

    @property
    def cloudfront(self):
        return self.run.client("cloudfront")

    def _static_domain(self) -> str | None:
        if self.static_bucket is None:
            return None
        return f"{self.static_bucket.name}.s3.{self.run.environment.region}.amazonaws.com"

    def _behaviour(self, path: str | None, origin: str, cache: str, request: str | None, methods: list[str]) -> dict:
        behaviour = {"TargetOriginId": origin, "ViewerProtocolPolicy": "redirect-to-https", "Compress": True,
                     "CachePolicyId": cache, "AllowedMethods": {**_items(methods), "CachedMethods": _items(READ_METHODS)}}
        if request:
            behaviour["OriginRequestPolicyId"] = request
        if path:
            behaviour["PathPattern"] = path
        return behaviour

    def _behaviours(self) -> list[dict]:
        dynamic = [self._behaviour(p, "alb", CACHING_DISABLED, ALL_VIEWER, ALL_METHODS)
                   for p in ("/api/*", "/admin/*", "/health/")]
        return [self._behaviour("/static/*", "static", CACHING_OPTIMIZED, None, READ_METHODS),
                self._behaviour("/assets/*", "alb", CACHING_OPTIMIZED, ALL_VIEWER, READ_METHODS), *dynamic]

    def _config(self, caller_reference: str) -> dict:
        env = self.run.environment
        return {
            "CallerReference": caller_reference, "Comment": self.name, "Enabled": True,
            "Aliases": _items(env.certificate_names),
            "Origins": _items([
                {"Id": "alb", "DomainName": known_after_apply(self.alb.dns_name if self.alb else None),
                 "CustomHeaders": _items([{"HeaderName": ORIGIN_HEADER, "HeaderValue": self.origin_value or ""}]),
                 "CustomOriginConfig": {
                    "HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "https-only",
                    "OriginSslProtocols": _items(["TLSv1.2"]), "OriginReadTimeout": 30, "OriginKeepaliveTimeout": 5}},
                {"Id": "static", "DomainName": self._static_domain(), "S3OriginConfig": {"OriginAccessIdentity": ""},
                 "OriginAccessControlId": self.oac_id or ""},
            ]),
            "DefaultCacheBehavior": self._behaviour(None, "alb", CACHING_DISABLED, ALL_VIEWER, ALL_METHODS),
            "CacheBehaviors": _items(self._behaviours()),
            "CustomErrorResponses": _items([
                {"ErrorCode": code, "ResponsePagePath": f"/static/errors/{code}.html", "ResponseCode": str(code),
                 "ErrorCachingMinTTL": 10} for code in ERROR_PAGES]),
            "PriceClass": "PriceClass_100", "HttpVersion": "http2and3", "IsIPV6Enabled": True,
            "ViewerCertificate": {"ACMCertificateArn": known_after_apply(self.certificate.id if self.certificate else None),
                                  "SSLSupportMethod": "sni-only", "MinimumProtocolVersion": "TLSv1.2_2021"},
        }

    @staticmethod
    def _observe(config: dict) -> dict[str, Any]:
        def behaviour(b: dict) -> dict:
            return {"path": b.get("PathPattern"), "origin": b["TargetOriginId"], "viewer": b["ViewerProtocolPolicy"],
                    "compress": b.get("Compress"), "cache": b.get("CachePolicyId"),
                    "request": b.get("OriginRequestPolicyId") or None,
                    "methods": sorted(b.get("AllowedMethods", {}).get("Items", []))}

        viewer = config.get("ViewerCertificate", {})
        return {
            "enabled": config["Enabled"], "aliases": sorted(config.get("Aliases", {}).get("Items", [])),
            "origins": {o["Id"]: o["DomainName"] for o in config["Origins"]["Items"]},
            # The header's value is a secret: compared and shown by its fingerprint only.
            "origin_headers": {o["Id"]: sorted(f"{h['HeaderName']}: {fingerprint(h['HeaderValue'])}"
                                               for h in o.get("CustomHeaders", {}).get("Items", []))
                               for o in config["Origins"]["Items"]},
            "default": behaviour(config["DefaultCacheBehavior"]),
            "behaviours": [behaviour(b) for b in config.get("CacheBehaviors", {}).get("Items", [])],
            "errors": sorted((e["ErrorCode"], e.get("ResponsePagePath"), str(e.get("ResponseCode")))
                             for e in config.get("CustomErrorResponses", {}).get("Items", [])),
            "http_version": config.get("HttpVersion"), "ipv6": config.get("IsIPV6Enabled"),
            "certificate": viewer.get("ACMCertificateArn"), "tls": viewer.get("MinimumProtocolVersion"),
            "price_class": config.get("PriceClass"),
        }

    def desired(self) -> dict[str, Any]:
        return self._observe(self._config(""))

    @classmethod
    def _ours(cls, run: Run, name: str | None = None) -> list[dict]:
        cloudfront = run.client("cloudfront")
        prefix = resource_name(run.env_name, "")
        found = []
        for page in cloudfront.get_paginator("list_distributions").paginate():
            for summary in page["DistributionList"].get("Items", []):
                if not (summary["Comment"] == name if name else summary["Comment"].startswith(prefix)):
                    continue
                tags = cloudfront.list_tags_for_resource(Resource=summary["ARN"])["Tags"].get("Items", [])
                if {t["Key"]: t["Value"] for t in tags}.get(ENVIRONMENT_TAG) == run.env_name:
                    found.append(summary)
        return found

    def discover(self) -> Found | None:
        ours = self._ours(self.run, self.name)
        if not ours:
            return None
        summary = ours[0]
        config = self.cloudfront.get_distribution_config(Id=summary["Id"])["DistributionConfig"]
        return Found(id=summary["Id"], component=self.component, raw=summary, state=self._observe(config))

    def _check(self) -> None:
        arn = self.certificate.id if self.certificate else None
        if not arn or ":acm:us-east-1:" not in arn:
            raise RefusedByAws(f"CloudFront takes ACM certificates from us-east-1 only; {arn} is not. With a region "
                               "other than us-east-1, request the certificate in us-east-1 too. Nothing was created.")
        if self.alb is None or not self.alb.dns_name:
            raise RuntimeError("the ALB has no DNS name yet; Phase 3 must create it first")
        # By type, not by text: a generated value starting with "(" once failed this check (1 run in ~90).
        if not self.origin_value or isinstance(self.origin_value, KnownAfterApply):
            raise RuntimeError("the origin header's secret has no value yet; Phase 3 generates it")
        config = self._config("")
        blind = [b.get("PathPattern", "default") for b in [config["DefaultCacheBehavior"], *config["CacheBehaviors"]["Items"]]
                 if b["TargetOriginId"] == "alb" and b.get("OriginRequestPolicyId") != ALL_VIEWER]
        if blind:  # CloudFront would check the ALB's certificate against the ALB's DNS name and answer 502
            raise RefusedByAws(f"behaviours {blind} reach the ALB without forwarding the viewer's Host")

    def create(self) -> str:
        self._check()
        distribution = self.cloudfront.create_distribution_with_tags(DistributionConfigWithTags={
            # Same reference and config on a retry: CloudFront returns the distribution the first attempt made.
            "DistributionConfig": self._config(client_token(self.run, self.component, 128)),
            "Tags": {"Items": tag_list(self.run.env_name, self.component)}})["Distribution"]
        self.wait_deployed(distribution["Id"])
        return distribution["Id"]

    def update(self, found: Found, changes) -> None:
        self._check()
        current = self.cloudfront.get_distribution_config(Id=found.id)
        config = self._config(current["DistributionConfig"]["CallerReference"])
        # Phase 7 owns the web ACL and the access logs (tasks/waf.py, tasks/log_archive.py): kept as they are.
        config.update({k: current["DistributionConfig"][k] for k in ("WebACLId", "Logging") if k in current["DistributionConfig"]})
        self.cloudfront.update_distribution(Id=found.id, IfMatch=current["ETag"], DistributionConfig=config)
        self.wait_deployed(found.id)

    def settle(self, found: Found) -> Found:
        if found.raw.get("Status") == "Deployed":
            return found
        self.wait_deployed(found.id)
        return self.discover() or found

    def wait_deployed(self, distribution_id: str) -> None:
        # AWS takes minutes to deploy a distribution: bounded at 30.
        self.cloudfront.get_waiter("distribution_deployed").wait(Id=distribution_id, WaiterConfig=self.run.waiter(30, 30))

    def delete(self, found: Found) -> None:
        # AWS deletes only a disabled, deployed distribution, with the ETag of its latest config.
        current = self.cloudfront.get_distribution_config(Id=found.id)
        if current["DistributionConfig"]["Enabled"]:
            config = {**current["DistributionConfig"], "Enabled": False}
            self.cloudfront.update_distribution(Id=found.id, IfMatch=current["ETag"], DistributionConfig=config)
            self.wait_deployed(found.id)
        etag = self.cloudfront.get_distribution_config(Id=found.id)["ETag"]
        self.cloudfront.delete_distribution(Id=found.id, IfMatch=etag)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        prefix = resource_name(run.env_name, "")
        return [Found(id=d["Id"], state={}, raw=d, component=d["Comment"].removeprefix(prefix)) for d in cls._ours(run)]


class StaticSiteAccess(Resource):
    """The static bucket's policy statement that lets this distribution (and nothing else) read it."""

    kind = "bucket-policy-statement"
    sid = "CloudFrontReadStatic"

    def __init__(self, run: Run, component: str = "static-cdn-read", bucket: BucketRecord | None = None,
                 distribution_arn: str | None = None):
        super().__init__(run, component)
        self.bucket, self.distribution_arn = bucket, distribution_arn

    def _statement(self) -> dict:
        return {"Sid": self.sid, "Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject", "Resource": f"{self.bucket.arn}/static/*",
                "Condition": {"StringEquals": {"AWS:SourceArn": known_after_apply(self.distribution_arn)}}}

    def desired(self) -> dict[str, Any]:
        return {"statement": self._statement()}

    def discover(self) -> Found | None:
        if self.bucket.id is None:  # Phase 1 has not made the bucket yet: nor, then, its policy
            return None
        mine = own_statements(bucket_policy(self.run.client("s3"), self.bucket.name), {self.sid})
        if mine is None:
            return None
        return Found(id=f"{self.bucket.name}#{self.sid}", component=self.component, state={"statement": mine["Statement"][0]})

    def create(self) -> str:
        put_statements(self.run.client("s3"), self.bucket.name, [self._statement()])
        return f"{self.bucket.name}#{self.sid}"

    def update(self, found: Found, changes) -> None:
        self.create()

    def delete(self, found: Found) -> None:
        pass  # goes with the bucket (storage teardown)


class CdnRecord(Record):
    domain_name: str | None  # dxxxx.cloudfront.net
    arn: str | None
    hosted_zone_id: str = CLOUDFRONT_ZONE_ID
    aliases: list[str]
    origin_access_control: Record
    bucket_access: Record


@task(**AWS_STEP)
def ensure_distribution(run: Run, alb: LoadBalancerRecord, buckets: dict[str, BucketRecord],
                        certificate: CertificateRecord, origin_value: str | None = None) -> CdnRecord:
    """The distribution over the ALB (with the secret origin header) and the static bucket, and the
    bucket's grant to it alone."""
    oac = ensure(OriginAccessControl(run, "static"))
    distribution = Distribution(run, "cdn", alb, buckets["static"], oac.id, certificate, origin_value)
    outcome = ensure(distribution)
    summary = outcome.current(run, lambda: Distribution._ours(run, distribution.name)[0])
    arn = summary.get("ARN") if summary else None
    access = ensure(StaticSiteAccess(run, bucket=buckets["static"], distribution_arn=arn))
    return CdnRecord(
        name=distribution.name, id=outcome.id, change=outcome.change, arn=arn,
        domain_name=summary.get("DomainName") if summary else None, aliases=run.environment.certificate_names,
        origin_access_control=Record(name=resource_name(run.env_name, "static"), id=oac.id, change=oac.change),
        bucket_access=Record(name=f"{buckets['static'].name} {StaticSiteAccess.sid}", id=access.id, change=access.change))


class InvalidationRecord(Record):
    status: str | None
    paths: list[str]
    seconds: float | None = None


@task(**AWS_STEP)
def invalidate_cache(run: Run, distribution_id: str | None, reason: str, paths: tuple[str, ...] = ("/*",)) -> InvalidationRecord:
    """Invalidate CloudFront after a release so no edge serves the previous one; wait until done (bounded)."""
    name = f"{resource_name(run.env_name, 'cdn')} {' '.join(paths)}"
    change = Change(action=Action.CREATE, kind="cloudfront-invalidation", name=name, note=reason)
    if not run.applying or distribution_id is None:
        run.report(change)
        return InvalidationRecord(name=name, change=change, status=None, paths=list(paths))
    cloudfront = run.client("cloudfront")
    started = time.monotonic()
    invalidation = cloudfront.create_invalidation(DistributionId=distribution_id, InvalidationBatch={
        "Paths": _items(list(paths)), "CallerReference": f"golive-{uuid.uuid4()}"})["Invalidation"]
    delay, deadline = run.poll_delay(20), 1800
    status = invalidation["Status"]
    # moto answers 'COMPLETED' where AWS says 'Completed' (its waiter never succeeds there): compare both.
    while status.lower() != "completed" and time.monotonic() - started < deadline:
        time.sleep(delay)
        status = cloudfront.get_invalidation(DistributionId=distribution_id, Id=invalidation["Id"])["Invalidation"]["Status"]
    if status.lower() != "completed":
        raise TimeoutError(f"invalidation {invalidation['Id']} still {status} after {deadline} s")
    change = change.model_copy(update={"id": invalidation["Id"]})
    run.report(change)
    return InvalidationRecord(name=name, id=invalidation["Id"], change=change, status=status, paths=list(paths),
                              seconds=round(time.monotonic() - started, 2))


TEARDOWN_ORDER: list[type[Resource]] = [Distribution, OriginAccessControl]
