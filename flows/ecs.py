"""Phase 3 of the deployment plan: ECS deployment.

3.1 the cluster (Fargate, Container Insights) and its log groups; 3.2 the task definitions and
auto-scaling; 3.3 the ALB, target groups, HTTPS and redirect listeners, routing rules and sticky
sessions; 3.4 the backend and frontend services (2 tasks each, rolling, circuit breaker with rollback).
The target groups and the task definitions do not wait for each other; the services wait for both.
"""

from __future__ import annotations

from prefect import flow
from prefect.futures import PrefectFuture

from golive.changes import KNOWN_AFTER_APPLY
from golive.report import PhaseResult, deliverable, finish_phase
from golive.run import Mode, Run
from tasks.compute import SERVICES, current_release_tag, ensure_cluster, ensure_service, ensure_task_definition
from tasks.foundation import Foundation, missing_pieces, read_foundation
from tasks.load_balancer import LoadBalancerRecord, ensure_load_balancer, ensure_target_groups
from tasks.registry import read_image
from tasks.scaling_schedule import ensure_scaling_schedule
from tasks.secrets import ensure_origin_verify


@flow(name="phase-3-ecs")
def ecs(environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply",
        allow_replace: bool = False, image_tag: str | None = None,
        load_balancer: LoadBalancerRecord | None = None) -> PhaseResult:
    """Run the backend and frontend on Fargate behind the ALB. image_tag: deploy that tag (a release).
    load_balancer: 3.3 already made by the go-live (golive/phases.py `ahead`), so this run only uses it."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode, allow_replace=allow_replace)
    base = read_foundation(run)
    cluster = ensure_cluster.submit(run)
    alb = submit_load_balancer(run, base) if load_balancer is None else None
    tag = image_tag or current_release_tag(run)
    images = {s: read_image.submit(run, s, tag) for s in SERVICES}  # Phase 2 (or the release) published them
    definitions = {s: ensure_task_definition.submit(run, s, images[s], base.roles) for s in SERVICES}
    alb_record = alb.result() if load_balancer is None else load_balancer
    services = {}
    for service in SERVICES:
        group = alb_record.target_groups[service]
        label = (f"{alb_record.full_name}/{group.id.split(':')[-1]}" if alb_record.id and group.id
                 else KNOWN_AFTER_APPLY)  # the ALB and its target group are made by this very plan
        services[service] = ensure_service.submit(run, service, cluster, definitions[service], base.private_subnets,
                                                  base.security_groups, group, label)
    # Off-hours scaling acts on each service's scalable target, so it waits for the service.
    schedules = {s: ensure_scaling_schedule.submit(run, s, wait_for=[services[s]]) for s in SERVICES}
    outputs = {"cluster": cluster.result(), "load_balancer": alb_record,
               "task_definitions": {s: f.result() for s, f in definitions.items()},
               "services": {s: f.result() for s, f in services.items()}, "image_tag": tag,
               "scaling_schedules": {s: f.result() for s, f in schedules.items()}}
    waiting_for = {1: missing_pieces(base),
                   2: [f"image {i.name}" for i in (f.result() for f in images.values()) if not i.id]}
    return finish_phase(run, "phase-3-ecs", outputs, ecs_deliverables(run, outputs), waiting_for=waiting_for)


def submit_load_balancer(run: Run, base: Foundation) -> PrefectFuture:
    """3.3: the target groups and the origin header (neither waits for the other), then the ALB over them."""
    target_groups = ensure_target_groups.submit(run, base.vpc_id)
    origin_values = ensure_origin_verify.submit(run)  # the header only CloudFront's requests carry
    return ensure_load_balancer.submit(run, base.public_subnets, base.security_groups, base.certificate, target_groups,
                                       origin_values)


@flow(name="phase-3-load-balancer")
def load_balancer(environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply",
                  allow_replace: bool = False) -> LoadBalancerRecord:
    """3.3 on its own: the ALB, its target groups, listeners and rules. It needs Phase 1 (subnets, security
    groups, certificate), not the schema Phase 5 migrates, so the go-live runs it ahead of the rest of Phase 3
    (in AWS the ALB's few minutes of provisioning then pass beside Phase 5) and hands Phase 3 the result."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode, allow_replace=allow_replace)
    return submit_load_balancer(run, read_foundation(run)).result()


def ecs_deliverables(run: Run, outputs: dict) -> list:
    planned = not run.applying
    env = run.environment
    cluster, alb = outputs["cluster"], outputs["load_balancer"]
    definitions, services = outputs["task_definitions"], outputs["services"]
    return [
        deliverable("3.1", "ECS cluster running", bool(cluster.id), f"{cluster.id} (Container Insights enabled)",
                    planned=planned),
        deliverable("3.1", "Logging configured", all(g.id for g in cluster.log_groups),
                    ", ".join(f"{g.name} ({env.app.log_retention_days} days)" for g in cluster.log_groups), planned=planned),
        deliverable("3.2", "Task definitions registered", all(d.id for d in definitions.values()),
                    ", ".join(f"{d.id} ({getattr(env.services, s).cpu} CPU / {getattr(env.services, s).memory} MB, "
                              f"{d.image})" for s, d in definitions.items()), planned=planned),
        deliverable("3.2", "Auto-scaling configured (2-10 tasks)", all(s.scaling and s.scaling.id for s in services.values()),
                    ", ".join(s.scaling.name for s in services.values() if s.scaling)
                    + "; target tracking on CPU 70% and 1000 requests per target", planned=planned),
        deliverable("3.3", "ALB DNS name", bool(alb.dns_name), str(alb.dns_name), planned=planned),
        deliverable("3.3", "Target groups configured", all(g.id for g in alb.target_groups.values()),
                    ", ".join(f"{k}: health /health/" if k == "backend" else f"{k}: health /"
                              for k in alb.target_groups) + "; backend sticky (lb_cookie)", planned=planned),
        deliverable("3.3", "SSL certificate attached", bool(alb.listeners["https"].id),
                    f"HTTPS:443 with the ACM certificate; HTTP:80 redirects to HTTPS ({alb.listeners['http'].id})",
                    planned=planned),
        deliverable("3.4", "Services running",
                    all(s.running is not None and s.running >= getattr(env.services, k).min_tasks for k, s in services.items()),
                    ", ".join(f"{s.name}: {s.running}/{s.desired} running, revision {s.revision}" for s in services.values()),
                    planned=planned),
        deliverable("3.4", "Connected to load balancer", all(s.id for s in services.values()),
                    ", ".join(f"{k} -> {alb.target_groups[k].name}" for k in services)
                    + "; rolling updates, circuit breaker with rollback", planned=planned),
    ]
