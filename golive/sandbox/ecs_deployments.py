"""What ECS does on update_service that moto 5.2.5 does not: a new deployment becomes PRIMARY.

moto changes the service's taskDefinition but leaves `deployments[]` on the old revision
(notes/moto-5.2.5.md), so a release could never be shown to be running. In AWS a rolling update with a
new task definition starts a PRIMARY deployment of it (the old one ACTIVE until drained); moto's tasks
are running at once, so here the new deployment is COMPLETED and the old one gone, as AWS ends up.
Applied in the sandbox's moto process only, before the server starts (golive/sandbox/moto_server.py).
"""

from __future__ import annotations


def install() -> None:
    from moto.core.utils import utcnow
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.moto_api._internal import mock_random

    original = EC2ContainerServiceBackend.update_service

    def update_service(self, service_properties):
        before = None
        cluster, name = service_properties.get("cluster", "default"), service_properties.get("service", "")
        try:
            before = self._get_service(cluster, name.split("/")[-1]).task_definition
        except Exception:  # moto raises its own not-found error below, as before
            pass
        service = original(self, service_properties)
        if service.task_definition != before and service.deployments:
            deployment_id = f"ecs-svc/{mock_random.randint(0, 32**12)}"
            now = utcnow()
            service.deployments = [{
                **service.deployments[0], "id": deployment_id, "status": "PRIMARY", "createdAt": now,
                "updatedAt": now, "taskDefinition": service.task_definition, "rolloutState": "COMPLETED",
                "rolloutStateReason": f"ECS deployment {deployment_id} completed.",
                "desiredCount": service.desired_count, "runningCount": service.running_count,
                "pendingCount": 0, "failedTasks": 0,
            }]
        return service

    EC2ContainerServiceBackend.update_service = update_service
