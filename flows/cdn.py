"""Phase 4 of the deployment plan: CDN and performance.

4.1 the CloudFront distribution over the ALB and the static bucket (origin access control), its cache
behaviours, certificate, compression, HTTP/2 and HTTP/3 and custom error pages; 4.2 collectstatic to S3
through django-storages (media uploads go to the media bucket through the same settings).
"""

from __future__ import annotations

from prefect import flow

from golive.report import PhaseResult, deliverable, finish_phase
from golive.run import Mode, Run
from tasks.cdn import ensure_distribution
from tasks.foundation import missing_pieces, read_foundation
from tasks.load_balancer import read_load_balancer
from tasks.secrets import ensure_origin_verify
from tasks.static_files import StaticFilesRecord, publish_static_files


@flow(name="phase-4-cdn")
def cdn(environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply",
        allow_replace: bool = False, static_files: StaticFilesRecord | None = None) -> PhaseResult:
    """Put CloudFront in front of the site and the static files on S3. static_files: 4.2 already published
    by the go-live (golive/phases.py `ahead`), so this run only shows it."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode, allow_replace=allow_replace)
    base = read_foundation(run)
    published = publish_static_files.submit(run, base.buckets) if static_files is None else None
    alb = read_load_balancer(run)
    distribution = ensure_distribution.submit(run, alb, base.buckets, base.certificate, ensure_origin_verify(run)[0])
    outputs = {"distribution": distribution.result(),
               "static_files": static_files if static_files is not None else published.result(),
               "media_bucket": base.buckets["media"].name}
    waiting_for = {1: missing_pieces(base), 3: [] if alb.id else [f"the load balancer {alb.name}"]}
    return finish_phase(run, "phase-4-cdn", outputs, cdn_deliverables(run, outputs), waiting_for=waiting_for)


@flow(name="phase-4-static-files")
def static_files(environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply",
                 allow_replace: bool = False) -> StaticFilesRecord:
    """4.2 on its own: collectstatic to the static bucket. It needs Phase 1's bucket and the app, not the
    load balancer, so the go-live runs it ahead of the rest of Phase 4 and hands Phase 4 the result."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode, allow_replace=allow_replace)
    return publish_static_files(run, read_foundation(run).buckets)


def static_file_served(run: Run, bucket: str, path: str = "static/errors/503.html") -> tuple[bool, str]:
    """Read one collected file back from S3: proof the upload landed, not only that collectstatic ran."""
    s3 = run.client("s3")
    try:
        head = s3.head_object(Bucket=bucket, Key=path)
    except s3.exceptions.ClientError as error:
        return False, f"s3://{bucket}/{path}: {error.response['Error'].get('Code')}"
    return True, f"s3://{bucket}/{path} ({head['ContentLength']} bytes, {head.get('ContentType')})"


def cdn_deliverables(run: Run, outputs: dict) -> list:
    planned = not run.applying
    distribution, static = outputs["distribution"], outputs["static_files"]
    media = static.media
    served, evidence = static_file_served(run, static.bucket) if not planned else (False, "")
    return [
        deliverable("4.1", "CloudFront URL", bool(distribution.domain_name),
                    f"https://{distribution.domain_name} (aliases {', '.join(distribution.aliases)})", planned=planned),
        deliverable("4.1", "Cached static files", bool(distribution.id),
                    "/static/* from the private bucket via origin access control (CachingOptimized); /assets/* cached; "
                    "/api/*, /admin/*, /health/ and pages not cached, Host and cookies forwarded", planned=planned),
        deliverable("4.1", "Improved global performance", bool(distribution.id),
                    "compression on, HTTP/2 and HTTP/3, IPv6, TLS 1.2+ (sni-only), error pages 502/503/504",
                    planned=planned),
        deliverable("4.2", "Static files on S3", served,
                    f"{evidence}; {static.copied} copied, {static.unmodified} unmodified this run", planned=planned),
        deliverable("4.2", "Media uploads to S3",
                    media.get("backend") == "storages.backends.s3.S3Storage" and media.get("bucket") == outputs["media_bucket"],
                    f"the production settings' default storage: {media.get('backend')} on {media.get('bucket')} "
                    f"under {media.get('location')}/ (signed URLs); the app role may write only there", planned=planned),
    ]
