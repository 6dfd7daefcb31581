"""A new stack in moto for the sandbox's edge to serve, without running Phases 1-4: a certificate for
the site's names, an ALB whose HTTPS listener refuses (403) what lacks the origin header and forwards the
rest, and a distribution in front of it that forwards the viewer's Host and adds the header. The edge
listeners (golive/sandbox/edge.py) read these records and serve them over TLS; the app is the local one."""

from __future__ import annotations

from golive.naming import tag_list
from tasks.cdn import ALL_VIEWER, CACHING_DISABLED
from tasks.load_balancer import NOT_FROM_CLOUDFRONT, ORIGIN_HEADER

ORIGIN_SECRET = "test-origin-secret"


def make_alb(run) -> dict:
    ec2, elb, acm = run.client("ec2"), run.client("elbv2"), run.client("acm")
    names = run.environment.certificate_names
    # Imported (ISSUED at once) rather than requested (PENDING_VALIDATION for a second in moto).
    from golive.sandbox import tls

    pem, key = tls.issue(names)
    certificate = acm.import_certificate(Certificate=pem, PrivateKey=key, CertificateChain=tls.ca_file().read_bytes(),
                                         Tags=tag_list(run.env_name, "certificate"))["CertificateArn"]
    vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.99.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
               for i, z in enumerate("ab")]
    lb = elb.create_load_balancer(Name=f"golive-{run.env_name}-alb", Subnets=subnets, Scheme="internet-facing",
                                  Type="application", Tags=tag_list(run.env_name, "alb"))["LoadBalancers"][0]
    group = elb.create_target_group(Name=f"golive-{run.env_name}-backend", Protocol="HTTP", Port=8000, VpcId=vpc,
                                    TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    listener = elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTPS", Port=443,
                                   Certificates=[{"CertificateArn": certificate}],
                                   DefaultActions=NOT_FROM_CLOUDFRONT)["Listeners"][0]["ListenerArn"]
    elb.create_rule(ListenerArn=listener, Priority=30, Actions=[{"Type": "forward", "TargetGroupArn": group}],
                    Conditions=[{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": ORIGIN_HEADER,
                                                                              "Values": [ORIGIN_SECRET]}}])
    return lb


def make_distribution(run, aliases: list[str] | None = None, *, forward_host: bool = True,
                      header_value: str = ORIGIN_SECRET) -> dict:
    """What Phase 3 and 4 make, in brief: the ALB and a distribution (Comment golive-<env>-cdn, tagged
    as ours) over it, serving the names. forward_host=False or another header_value break the new stack
    the way a misconfigured origin would."""
    aliases = aliases if aliases is not None else run.environment.certificate_names
    lb = make_alb(run)
    behaviour = {"TargetOriginId": "alb", "ViewerProtocolPolicy": "redirect-to-https", "CachePolicyId": CACHING_DISABLED}
    if forward_host:
        behaviour["OriginRequestPolicyId"] = ALL_VIEWER
    config = {
        "CallerReference": f"golive-{run.env_name}-cdn", "Comment": f"golive-{run.env_name}-cdn", "Enabled": True,
        "Aliases": {"Quantity": len(aliases), "Items": aliases},
        "Origins": {"Quantity": 1, "Items": [{
            "Id": "alb", "DomainName": lb["DNSName"],
            "CustomHeaders": {"Quantity": 1, "Items": [{"HeaderName": ORIGIN_HEADER, "HeaderValue": header_value}]},
            "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "https-only"}}]},
        "DefaultCacheBehavior": behaviour,
        "ViewerCertificate": {"ACMCertificateArn": lb and run.client("elbv2").describe_listeners(
            LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"][0]["Certificates"][0]["CertificateArn"],
                              "SSLSupportMethod": "sni-only", "MinimumProtocolVersion": "TLSv1.2_2021"},
    }
    return run.client("cloudfront").create_distribution_with_tags(DistributionConfigWithTags={
        "DistributionConfig": config, "Tags": {"Items": tag_list(run.env_name, "cdn")}})["Distribution"]


def dns_answers(name: str, times: int = 1) -> list[list[str]]:
    """What the sandbox's DNS server answers for name's A record, `times` times: each a chain of names."""
    from golive.probes import sandbox_resolve
    from golive.sandbox.edge import status

    return [sandbox_resolve(status()["dns_server"], name)[0] for _ in range(times)]
