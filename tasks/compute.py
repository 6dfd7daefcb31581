"""Plan sections 3.1 and 3.3, ECS on Fargate: the cluster with Container Insights, log groups, the task
definitions, the backend and frontend services behind the ALB, and auto-scaling.

Task definitions are registered only when what they say changes: a converged run registers no revision.
The services roll with the deployment circuit breaker and roll back by themselves when new tasks fail.
The desired count is set when a service is created and then left to the auto-scaler (a later run must
not fight it). moto does not report a service's deploymentConfiguration nor its health-check grace
period; in the sandbox those two are compared as sent, and shown as such in the docstring of `Service`.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from golive.aws_errors import aws_error
from golive.changes import KNOWN_AFTER_APPLY, Record, known_after_apply
from golive.naming import ENVIRONMENT_TAG, parameter_name, resource_name, secret_name
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from golive.scaffold import gunicorn_workers
from tasks.registry import ImageRecord
from tasks.network import SecurityGroupRecord, SubnetRecord

SERVICES = ("backend", "frontend")
# One-off tasks (migrations, the seed, the admin user: tasks/one_off.py) run the backend's image on a task
# definition of their own: ECS overrides cannot change a container's secrets, and these commands log in to
# the database as its owner, where the service logs in as the app's own role.
ONE_OFF = "manage"
# The app's secrets, by the variable the container sees: (Secrets Manager name in tasks/secrets.py, JSON key).
# The database login is a secret the task resolves when it starts, so a rotated password reaches every new
# task without a new revision; host, port and name are plain parameters (DB_HOST, DB_PORT, DB_NAME).
APP_SECRETS = {"SECRET_KEY": ("django-secret-key", None), "REDIS_URL": ("redis-url", None),
               "DB_USER": ("database-login", "username"), "DB_PASSWORD": ("database-login", "password")}
RELEASE_PARAMETER = "release/image-tag"
# A rollback's steps, written before any service moves and deleted once it is done (flows/release.py).
ROLLBACK_PARAMETER = "release/rollback-in-progress"


def ecs_tags(run: Run, component: str) -> list[dict]:
    from golive.naming import tags

    return [{"key": k, "value": v} for k, v in tags(run.env_name, component).items()]


ADMIN_PASSWORD_SECRET = "django-admin-password"  # Phase 5 generates it (tasks/app.py)


def log_group_name(environment: str, service: str) -> str:
    return f"/golive/{environment}/{service}"


class MissingSecret(ValueError):
    """A task definition would point at a secret or parameter that does not exist (AWS refuses the task)."""


class Cluster(Resource):
    kind = "ecs-cluster"

    @property
    def ecs(self):
        return self.run.client("ecs")

    def desired(self) -> dict[str, Any]:
        return {"container_insights": "enabled"}

    def discover(self) -> Found | None:
        clusters = self.ecs.describe_clusters(clusters=[self.name], include=["SETTINGS"])["clusters"]
        live = [c for c in clusters if c["status"] == "ACTIVE"]
        if not live:
            return None
        settings = {s["name"]: s["value"] for s in live[0].get("settings", [])}
        return Found(id=live[0]["clusterArn"], component=self.component, raw=live[0],
                     state={"container_insights": settings.get("containerInsights")})

    def create(self) -> str:
        return self.ecs.create_cluster(
            clusterName=self.name, settings=[{"name": "containerInsights", "value": "enabled"}],
            capacityProviders=["FARGATE", "FARGATE_SPOT"], tags=ecs_tags(self.run, self.component))["cluster"]["clusterArn"]

    def update(self, found: Found, changes) -> None:
        self.ecs.update_cluster_settings(cluster=self.name, settings=[{"name": "containerInsights", "value": "enabled"}])

    def delete(self, found: Found) -> None:
        self.ecs.delete_cluster(cluster=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        found = cls(run, "cluster").discover()
        return [found] if found else []


class LogGroup(Resource):
    kind = "log-group"

    def __init__(self, run: Run, component: str):
        super().__init__(run, component)
        self.name = log_group_name(run.env_name, component)

    @property
    def logs(self):
        return self.run.client("logs")

    def desired(self) -> dict[str, Any]:
        return {"retention_days": self.run.environment.app.log_retention_days}

    def discover(self) -> Found | None:
        groups = self.logs.describe_log_groups(logGroupNamePrefix=self.name)["logGroups"]
        group = next((g for g in groups if g["logGroupName"] == self.name), None)
        return Found(id=self.name, component=self.component, raw=group,
                     state={"retention_days": group.get("retentionInDays")}) if group else None

    def create(self) -> str:
        from golive.naming import tags

        self.logs.create_log_group(logGroupName=self.name, tags=tags(self.run.env_name, self.component))
        self.logs.put_retention_policy(logGroupName=self.name, retentionInDays=self.desired()["retention_days"])
        return self.name

    def update(self, found: Found, changes) -> None:
        self.logs.put_retention_policy(logGroupName=self.name, retentionInDays=self.desired()["retention_days"])

    def delete(self, found: Found) -> None:
        self.logs.delete_log_group(logGroupName=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        prefix = log_group_name(run.env_name, "")
        pages = run.client("logs").get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix)
        return [Found(id=g["logGroupName"], state={}, raw=g, component=g["logGroupName"].removeprefix(prefix))
                for page in pages for g in page["logGroups"]]


def app_settings_names(run: Run) -> list[str]:
    """The app's plain settings in Parameter Store (one level: release state lives below it)."""
    prefix = parameter_name(run.env_name, "")
    pages = run.client("ssm").get_paginator("get_parameters_by_path").paginate(Path=prefix, Recursive=False)
    # moto returns deeper levels even when not recursive: keep the first level only.
    return sorted(p["Name"] for page in pages for p in page["Parameters"] if "/" not in p["Name"].removeprefix(prefix))


class PerService(Resource):
    """One resource per ECS service (backend, frontend), each found by its own name: teardown looks up each."""

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        return [found for service in SERVICES if (found := cls(run, service).discover())]


def active_revisions(ecs, family: str) -> list[str]:
    """The family's ACTIVE revisions, newest first (sorted here: moto ignores sort=DESC)."""
    arns = [arn for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status="ACTIVE")
            for arn in page["taskDefinitionArns"] if arn.rsplit(":", 1)[0].endswith(f"/{family}")]
    return sorted(arns, key=lambda arn: int(arn.rsplit(":", 1)[1]), reverse=True)


def _revisions(ecs, family: str, status: str) -> list[str]:
    """The family's revisions in one status (the prefix also matches longer family names: filtered)."""
    return [arn for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status=status)
            for arn in page["taskDefinitionArns"] if arn.rsplit(":", 1)[0].endswith(f"/{family}")]


def secret_value_from(run: Run, name: str, json_key: str | None = None) -> str | None:
    """A container secret's valueFrom: the secret's full ARN (ECS needs it to read a JSON key), with the
    key when one is given; None while the secret does not exist (plan mode before Phase 1)."""
    secrets = run.client("secretsmanager")
    try:
        arn = secrets.describe_secret(SecretId=secret_name(run.env_name, name))["ARN"]
    except aws_error("ResourceNotFoundException"):
        return None
    return f"{arn}:{json_key}::" if json_key else arn


SENTRY_DSN_SECRET = "sentry-dsn"  # optional: stored by a person who wants error tracking (Phase 7)


def app_secrets(run: Run) -> dict[str, str | None]:
    """What the backend service's containers resolve at start: the app's secrets and its own database login,
    and the Sentry DSN when someone has stored one (error tracking stays off otherwise)."""
    found = {variable: secret_value_from(run, name, key) for variable, (name, key) in APP_SECRETS.items()}
    sentry = secret_value_from(run, SENTRY_DSN_SECRET)
    return {**found, "SENTRY_DSN": sentry} if sentry else found


def one_off_secrets(run: Run, master_secret_arn: str | None, admin_secret: str) -> dict[str, str | None]:
    """The one-off tasks' secrets: the app's, but the database login is the owner's (the RDS-managed master
    secret, rotated by RDS and read at start), and the admin password for `ensure_admin`."""
    return {**app_secrets(run),
            "DB_USER": f"{master_secret_arn}:username::" if master_secret_arn else None,
            "DB_PASSWORD": f"{master_secret_arn}:password::" if master_secret_arn else None,
            "DJANGO_SUPERUSER_PASSWORD": secret_value_from(run, admin_secret)}


class TaskDefinition(PerService):
    """A family's latest ACTIVE revision. A change registers the next revision; old ones stay for rollback.
    Families: the two services, and `manage` for one-off tasks (the backend's image and size)."""

    kind = "task-definition"

    def __init__(self, run: Run, component: str, image: ImageRecord | None = None,
                 roles: dict[str, str | None] | None = None, settings: list[str] | None = None,
                 secrets: dict[str, str | None] | None = None):
        super().__init__(run, component)
        self.image, self.roles, self.settings = image, roles or {}, settings or []
        self.secrets = secrets or {}

    @property
    def ecs(self):
        return self.run.client("ecs")

    @property
    def service(self):
        """The service whose size, port and logs this family shares (one-off tasks: the backend's)."""
        return getattr(self.run.environment.services, "backend" if self.component == ONE_OFF else self.component)

    @property
    def runs_backend(self) -> bool:
        return self.component in ("backend", ONE_OFF)

    def _secrets(self) -> list[dict]:
        if not self.runs_backend:
            return []
        region, account = self.run.environment.region, self.run.account_id()
        secrets = [{"name": variable, "valueFrom": value_from or KNOWN_AFTER_APPLY}
                   for variable, value_from in self.secrets.items()]
        prefix = parameter_name(self.run.env_name, "")
        secrets += [{"name": name.removeprefix(prefix), "valueFrom": f"arn:aws:ssm:{region}:{account}:parameter{name}"}
                    for name in self.settings]
        return sorted(secrets, key=lambda s: s["name"])

    def _health_check(self) -> dict | None:
        if self.component == ONE_OFF:
            return None  # a command that runs to its end: nothing to probe
        port = self.service.port
        if self.component == "backend":  # the slim Python image has no curl
            probe = f"python -c \"import urllib.request; urllib.request.urlopen('http://localhost:{port}/health/', timeout=4)\""
        else:
            probe = f"wget -q -O /dev/null http://localhost:{port}/"
        return {"command": ["CMD-SHELL", f"{probe} || exit 1"], "interval": 30, "timeout": 5, "retries": 3,
                "startPeriod": 60}

    def _container(self) -> dict:
        log_source = "backend" if self.component == ONE_OFF else self.component
        container = {
            "name": self.component, "image": self.image.uri if self.image else None, "essential": True,
            "portMappings": [] if self.component == ONE_OFF else [{"containerPort": self.service.port, "protocol": "tcp"}],
            "environment": [{"name": "WEB_CONCURRENCY", "value": str(gunicorn_workers(self.service.cpu))}]
            if self.component == "backend" else [],
            "secrets": self._secrets(),
            "healthCheck": self._health_check(),
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": log_group_name(self.run.env_name, log_source),
                "awslogs-region": self.run.environment.region, "awslogs-stream-prefix": self.component}},
            "readonlyRootFilesystem": False,
        }
        return container

    def desired(self) -> dict[str, Any]:
        return {"cpu": str(self.service.cpu), "memory": str(self.service.memory),
                "execution_role": self.roles.get("ecs-execution"), "task_role": self.roles.get("ecs-task"),
                "container": self._container()}

    @staticmethod
    def _observe(definition: dict) -> dict[str, Any]:
        container = definition["containerDefinitions"][0]
        keys = ("name", "image", "essential", "portMappings", "environment", "secrets", "healthCheck",
                "logConfiguration", "readonlyRootFilesystem")
        observed = {k: container.get(k) for k in keys}
        observed["portMappings"] = [{"containerPort": p["containerPort"], "protocol": p.get("protocol", "tcp")}
                                    for p in container.get("portMappings", [])]
        observed["environment"] = sorted(container.get("environment", []), key=lambda e: e["name"])
        observed["secrets"] = sorted(container.get("secrets", []), key=lambda e: e["name"])
        observed["readonlyRootFilesystem"] = bool(container.get("readonlyRootFilesystem", False))
        return {"cpu": definition.get("cpu"), "memory": definition.get("memory"),
                "execution_role": definition.get("executionRoleArn"), "task_role": definition.get("taskRoleArn"),
                "container": observed}

    def discover(self) -> Found | None:
        # The family's newest ACTIVE revision, listed explicitly: moto answers a bare family name with the
        # newest revision even when a rollback has deregistered it.
        arns = active_revisions(self.ecs, self.name)
        if not arns:
            return None
        definition = self.ecs.describe_task_definition(taskDefinition=arns[0])["taskDefinition"]
        return Found(id=definition["taskDefinitionArn"], component=self.component, raw=definition,
                     state=self._observe(definition))

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        """Every family with a revision left, ACTIVE or only INACTIVE (a killed teardown's): a destroy
        deletes them all, AWS keeps INACTIVE revisions indefinitely otherwise."""
        ecs = run.client("ecs")
        found = []
        for family in (*SERVICES, ONE_OFF):
            definition = cls(run, family)
            live = definition.discover()
            if live is not None:
                found.append(live)
            elif _revisions(ecs, definition.name, "INACTIVE"):
                found.append(Found(id=definition.name, component=family, raw={"family": definition.name}, state={}))
        return found

    def _check_secrets_exist(self) -> None:
        """ECS accepts a definition whose secrets do not exist, then every task fails to start: check first."""
        missing = [variable for variable, value_from in self.secrets.items() if not value_from]
        if missing:
            raise MissingSecret(f"task definition {self.name} would read secrets that do not exist: "
                                f"{', '.join(sorted(missing))}. Run Phase 1 (it stores the app's secrets and the "
                                "database) and apply again. Nothing was registered.")

    def _register(self) -> str:
        if self.image is None:
            raise RuntimeError(f"{self.name}: no image to run")
        self._check_secrets_exist()
        desired = self.desired()
        container = {k: v for k, v in desired["container"].items() if v is not None}
        # No client token exists for RegisterTaskDefinition: a resent request AWS had carried out would add
        # a second revision. One attempt; a failed one fails the task, whose retry (or the next run)
        # rediscovers the family's newest revision and registers only if its content still differs.
        ecs_once = self.run.aws.client("ecs", retry=False)
        return ecs_once.register_task_definition(
            family=self.name, requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
            cpu=desired["cpu"], memory=desired["memory"], executionRoleArn=desired["execution_role"],
            taskRoleArn=desired["task_role"], runtimePlatform={"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
            containerDefinitions=[container], tags=ecs_tags(self.run, self.component),
        )["taskDefinition"]["taskDefinitionArn"]

    def create(self) -> str:
        return self._register()

    def update(self, found: Found, changes) -> None:
        self.registered = self._register()

    def delete(self, found: Found) -> None:
        # Every ACTIVE revision of the family is deregistered (it can no longer start tasks), then every
        # revision deleted (DeleteTaskDefinitions takes INACTIVE ones, ten at a time).
        family = found.raw["family"]
        for arn in _revisions(self.ecs, family, "ACTIVE"):
            self.ecs.deregister_task_definition(taskDefinition=arn)
        inactive = _revisions(self.ecs, family, "INACTIVE")
        for start in range(0, len(inactive), 10):
            failures = self.ecs.delete_task_definitions(taskDefinitions=inactive[start:start + 10]).get("failures", [])
            if failures:
                raise RuntimeError(f"task definition {family}: {failures[0].get('arn')}: {failures[0].get('reason')}")



class Service(PerService):
    """An ECS service on Fargate in the private subnets behind its target group."""

    kind = "ecs-service"
    replace_on = frozenset({"load_balancers"})

    def __init__(self, run: Run, component: str, cluster: str | None = None, task_definition: str | None = None,
                 subnets: list[SubnetRecord] | None = None, security_group: str | None = None,
                 target_group: str | None = None):
        super().__init__(run, component)
        self.cluster, self.task_definition = cluster or resource_name(run.env_name, "cluster"), task_definition
        self.subnets, self.security_group, self.target_group = subnets or [], security_group, target_group

    @property
    def ecs(self):
        return self.run.client("ecs")

    @property
    def settings(self):
        return getattr(self.run.environment.services, self.component)

    def _network(self) -> dict:
        return {"awsvpcConfiguration": {"subnets": sorted(known_after_apply(s.id) for s in self.subnets),
                                        "securityGroups": [known_after_apply(self.security_group)],
                                        "assignPublicIp": "DISABLED"}}

    def _deployment(self) -> dict:
        return {"deploymentCircuitBreaker": {"enable": True, "rollback": True},
                "maximumPercent": 200, "minimumHealthyPercent": 100}

    def _load_balancers(self) -> list[dict]:
        return [{"targetGroupArn": known_after_apply(self.target_group), "containerName": self.component,
                 "containerPort": self.settings.port}]

    def desired(self) -> dict[str, Any]:
        return {"task_definition": known_after_apply(self.task_definition), "network": self._network(),
                "load_balancers": self._load_balancers(), "deployment": self._deployment(),
                "health_check_grace_seconds": 60}

    def _describe(self) -> dict | None:
        try:
            services = self.ecs.describe_services(cluster=self.cluster, services=[self.name])["services"]
        except aws_error("ClusterNotFoundException"):
            return None
        return next((s for s in services if s["status"] == "ACTIVE"), None)

    def discover(self) -> Found | None:
        service = self._describe()
        if service is None:
            return None
        network = service.get("networkConfiguration", {}).get("awsvpcConfiguration", {})
        desired = self.desired()
        return Found(id=service["serviceArn"], component=self.component, raw=service, state={
            "task_definition": service["taskDefinition"],
            "network": {"awsvpcConfiguration": {"subnets": sorted(network.get("subnets", [])),
                                                "securityGroups": network.get("securityGroups", []),
                                                "assignPublicIp": network.get("assignPublicIp")}},
            "load_balancers": [{k: lb[k] for k in ("targetGroupArn", "containerName", "containerPort")}
                               for lb in service.get("loadBalancers", [])],
            # moto reports neither; AWS does (see the module docstring).
            "deployment": {k: v for k, v in service["deploymentConfiguration"].items() if k in desired["deployment"]}
            if "deploymentConfiguration" in service else desired["deployment"],
            "health_check_grace_seconds": service.get("healthCheckGracePeriodSeconds", desired["health_check_grace_seconds"]),
        })

    def create(self) -> str:
        service = self.ecs.create_service(
            cluster=self.cluster, serviceName=self.name, taskDefinition=self.task_definition,
            desiredCount=self.settings.desired_tasks, launchType="FARGATE", networkConfiguration=self._network(),
            loadBalancers=self._load_balancers(), deploymentConfiguration=self._deployment(),
            healthCheckGracePeriodSeconds=60, propagateTags="SERVICE", enableECSManagedTags=True,
            deploymentController={"type": "ECS"}, tags=ecs_tags(self.run, self.component))["service"]
        self.wait_stable()
        return service["serviceArn"]

    def update(self, found: Found, changes) -> None:
        self.ecs.update_service(cluster=self.cluster, service=self.name, taskDefinition=self.task_definition,
                                networkConfiguration=self._network(), deploymentConfiguration=self._deployment(),
                                healthCheckGracePeriodSeconds=60)
        self.wait_stable()

    @staticmethod
    def rolling(service: dict) -> bool:
        """A deployment still in progress: a new revision's tasks starting, or the old ones draining."""
        deployments = service.get("deployments", [])
        return len(deployments) > 1 or any(d.get("rolloutState") == "IN_PROGRESS" for d in deployments)

    def settle(self, found: Found) -> Found:
        """A rollout a killed run started (create, update, release) is waited for, not started again."""
        if not self.rolling(found.raw):
            return found
        self.wait_stable()
        return self.discover() or found

    def wait_stable(self) -> None:
        """Until the rollout finishes: the new tasks healthy and the old ones drained (bounded)."""
        self.ecs.get_waiter("services_stable").wait(cluster=self.cluster, services=[self.name],
                                                    WaiterConfig=self.run.waiter(15, 15))

    def delete(self, found: Found) -> None:
        # AWS refuses to delete a service that still runs tasks: scale to 0 first.
        cluster = found.raw.get("clusterArn", self.cluster)
        self.ecs.update_service(cluster=cluster, service=found.id, desiredCount=0)
        self.ecs.delete_service(cluster=cluster, service=found.id)
        self.ecs.get_waiter("services_inactive").wait(cluster=cluster, services=[found.id],
                                                      WaiterConfig=self.run.waiter(15, 10))



class ServiceScaling(PerService):
    """Application Auto Scaling for a service: its bounds and two target-tracking policies (CPU and
    requests per target)."""

    kind = "service-scaling"
    namespace, dimension = "ecs", "ecs:service:DesiredCount"

    def __init__(self, run: Run, component: str, request_label: str | None = None):
        super().__init__(run, component)
        self.resource_id = f"service/{resource_name(run.env_name, 'cluster')}/{resource_name(run.env_name, component)}"
        self.request_label = request_label

    @property
    def scaling(self):
        return self.run.client("application-autoscaling")

    def _policies(self) -> dict[str, dict]:
        policies = {"cpu": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization", "TargetValue": 70.0}}
        if self.request_label:
            policies["requests"] = {"PredefinedMetricType": "ALBRequestCountPerTarget", "TargetValue": 1000.0,
                                    "ResourceLabel": self.request_label}
        return policies

    def desired(self) -> dict[str, Any]:
        settings = getattr(self.run.environment.services, self.component)
        return {"min": settings.min_tasks, "max": settings.max_tasks, "policies": self._policies()}

    def discover(self) -> Found | None:
        targets = self.scaling.describe_scalable_targets(ServiceNamespace=self.namespace,
                                                         ResourceIds=[self.resource_id])["ScalableTargets"]
        if not targets:
            return None
        policies = self.scaling.describe_scaling_policies(ServiceNamespace=self.namespace,
                                                          ResourceId=self.resource_id)["ScalingPolicies"]
        observed = {}
        for policy in policies:
            config = policy.get("TargetTrackingScalingPolicyConfiguration", {})
            spec = config.get("PredefinedMetricSpecification", {})
            observed[policy["PolicyName"].removeprefix(f"{self.name}-")] = {
                "PredefinedMetricType": spec.get("PredefinedMetricType"), "TargetValue": config.get("TargetValue"),
                **({"ResourceLabel": spec["ResourceLabel"]} if spec.get("ResourceLabel") else {})}
        minimum = targets[0]["MinCapacity"]
        schedule = self.run.environment.services.schedule
        settings = getattr(self.run.environment.services, self.component)
        if schedule is not None and minimum == min(schedule.off_hours_tasks, settings.min_tasks):
            # Off hours: the scheduled action (tasks/scaling_schedule.py) lowered it; a run must not undo that.
            minimum = settings.min_tasks
        return Found(id=self.resource_id, component=self.component, raw=targets[0],
                     state={"min": minimum, "max": targets[0]["MaxCapacity"], "policies": observed})

    def _apply(self, current: dict[str, dict]) -> None:
        desired = self.desired()
        self.scaling.register_scalable_target(ServiceNamespace=self.namespace, ResourceId=self.resource_id,
                                              ScalableDimension=self.dimension, MinCapacity=desired["min"],
                                              MaxCapacity=desired["max"])
        for name, spec in desired["policies"].items():
            if current.get(name) == spec:
                continue
            metric = {"PredefinedMetricType": spec["PredefinedMetricType"],
                      **({"ResourceLabel": spec["ResourceLabel"]} if "ResourceLabel" in spec else {})}
            self.scaling.put_scaling_policy(
                PolicyName=f"{self.name}-{name}", ServiceNamespace=self.namespace, ResourceId=self.resource_id,
                ScalableDimension=self.dimension, PolicyType="TargetTrackingScaling",
                TargetTrackingScalingPolicyConfiguration={"TargetValue": spec["TargetValue"],
                                                          "PredefinedMetricSpecification": metric,
                                                          "ScaleOutCooldown": 60, "ScaleInCooldown": 300})

    def create(self) -> str:
        self._apply({})
        return self.resource_id

    def update(self, found: Found, changes) -> None:
        self._apply(found.state["policies"])

    def delete(self, found: Found) -> None:
        # Deregistering the target deletes its policies and their alarms with it.
        self.scaling.deregister_scalable_target(ServiceNamespace=self.namespace, ResourceId=found.id,
                                                ScalableDimension=self.dimension)



class ServiceRecord(Record):
    task_definition: str | None
    revision: int | None
    image: str
    running: int | None = None
    desired: int | None = None
    deployment: dict = {}
    scaling: Record | None = None


class ComputeRecord(Record):
    """The cluster (this record's own name, id and change) and its log groups."""

    log_groups: list[Record]


@task(**AWS_STEP)
def ensure_cluster(run: Run) -> ComputeRecord:
    """The ECS cluster (Container Insights on) and a log group per service with the file's retention."""
    cluster = ensure(Cluster(run, "cluster"))
    groups = []
    for service in SERVICES:
        outcome = ensure(LogGroup(run, service))
        groups.append(Record(name=log_group_name(run.env_name, service), id=outcome.id, change=outcome.change))
    return ComputeRecord(name=resource_name(run.env_name, "cluster"), id=cluster.id, change=cluster.change,
                         log_groups=groups)


class TaskDefinitionRecord(Record):
    image: str | None
    revision: int | None


@task(**AWS_STEP)
def ensure_task_definition(run: Run, component: str, image: ImageRecord, roles: dict,
                           master_secret_arn: str | None = None) -> TaskDefinitionRecord:
    """A task definition (a service's, or `manage` for one-off tasks): a new revision only when its content
    changed. The backend's and manage's containers get the app's settings and secrets."""
    settings = app_settings_names(run) if component in ("backend", ONE_OFF) else []
    secrets = (one_off_secrets(run, master_secret_arn, ADMIN_PASSWORD_SECRET) if component == ONE_OFF
               else app_secrets(run) if component == "backend" else {})
    definition = TaskDefinition(run, component, image, {k: known_after_apply(r.arn) for k, r in roles.items()}, settings, secrets)
    outcome = ensure(definition)
    arn = getattr(definition, "registered", None) or outcome.id
    if not run.applying and outcome.change.is_change:
        arn = None  # a plan: the new revision's ARN is known after apply (the service is planned onto it)
    return TaskDefinitionRecord(name=definition.name, id=arn, change=outcome.change, image=image.uri,
                                revision=int(arn.rsplit(":", 1)[1]) if arn else None)


@task(**AWS_STEP)
def ensure_service(run: Run, component: str, cluster: ComputeRecord, task_definition: TaskDefinitionRecord,
                   private_subnets: list[SubnetRecord], security_groups: dict[str, SecurityGroupRecord],
                   target_group: Record, request_label: str | None) -> ServiceRecord:
    """The service (rolling update, circuit breaker with rollback), stable, with its auto-scaling."""
    service = Service(run, component, cluster.name, task_definition.id, private_subnets,
                      security_groups[component].id, target_group.id)
    outcome = ensure(service)
    scaling = ensure(ServiceScaling(run, component, request_label))
    current = outcome.current(run, service._describe) or {}
    bounds = getattr(run.environment.services, component)
    return ServiceRecord(
        name=service.name, id=outcome.id, change=outcome.change, task_definition=task_definition.id,
        revision=task_definition.revision, image=task_definition.image or "(known after apply)",
        running=current.get("runningCount"), desired=current.get("desiredCount"),
        deployment=current.get("deploymentConfiguration") or service._deployment(),
        scaling=Record(name=f"{service.name} {bounds.min_tasks}-{bounds.max_tasks} tasks", id=scaling.id,
                       change=scaling.change))


class RolledBack(RuntimeError):
    """A release the services do not run once stable: the circuit breaker rolled it back."""


@task(**AWS_STEP)
def confirm_primary_deployments(run: Run, task_definitions: dict[str, TaskDefinitionRecord]) -> dict[str, str]:
    """After the rollout is stable: each service's PRIMARY deployment must be the revision just released.
    ECS's circuit breaker rolls a failing deployment back and the service is then stable again, on the old
    revision: without this check such a release would look like a success. Returns service -> deployment id."""
    confirmed, problems = {}, []
    for component, definition in task_definitions.items():
        service = Service(run, component)._describe() or {}
        primary = next((d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), None)
        if primary is None:
            problems.append(f"{resource_name(run.env_name, component)} has no PRIMARY deployment")
        elif primary.get("taskDefinition") != definition.id or primary.get("rolloutState") == "FAILED":
            problems.append(f"{resource_name(run.env_name, component)} runs {primary.get('taskDefinition')} "
                            f"({primary.get('rolloutState')}: {primary.get('rolloutStateReason', '')}), not {definition.id}")
            if primary.get("taskDefinition") != definition.id:
                # Retire the revision that failed: `golive rollback` must never return to it, and the next
                # apply must see the running revision as the family's latest.
                run.client("ecs").deregister_task_definition(taskDefinition=definition.id)
        else:
            confirmed[component] = primary["id"]
    if problems:
        raise RolledBack("the release is not running: " + "; ".join(problems) + ". ECS rolled it back (see the "
                         "service's events and the new tasks' logs); the previous release still serves, and the "
                         "failed revision is deregistered.")
    return confirmed


def current_release_tag(run: Run) -> str:
    """The image tag deployed by the last `golive release` (kept in Parameter Store), else the file's."""
    ssm = run.client("ssm")
    try:
        return ssm.get_parameter(Name=parameter_name(run.env_name, RELEASE_PARAMETER))["Parameter"]["Value"]
    except aws_error("ParameterNotFound"):
        return run.environment.app.images.tag


def record_release_tag(run: Run, tag: str) -> None:
    from golive.naming import tag_list

    ssm = run.client("ssm")
    name = parameter_name(run.env_name, RELEASE_PARAMETER)
    ssm.put_parameter(Name=name, Value=tag, Type="String", Overwrite=True)
    if ENVIRONMENT_TAG not in {t["Key"] for t in ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]}:
        ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=name, Tags=tag_list(run.env_name, "release"))


TEARDOWN_ORDER: list[type[Resource]] = [ServiceScaling, Service, TaskDefinition, Cluster, LogGroup]
