"""The sandbox's Application Auto Scaling deletes what AWS deletes with a scalable target: moto 5.2.5's
DeregisterScalableTarget drops the target but keeps its scaling policies, and with them the CloudWatch
alarms a target-tracking policy made (TargetTracking-service/...-AlarmHigh/Low-...). A destroyed
environment kept four alarms per service, and every apply after a destroy added four more.

Installed in the sandbox's moto process: deregistering a target deletes its policies (their alarms go
with them, as moto's DeleteScalingPolicy already does), which is what AWS documents.
"""

from __future__ import annotations


def install() -> None:
    from moto.applicationautoscaling.models import ApplicationAutoscalingBackend

    original = ApplicationAutoscalingBackend.deregister_scalable_target

    def deregister_scalable_target(self, namespace: str, r_id: str, dimension: str) -> None:
        original(self, namespace, r_id, dimension)
        for key, policy in list(self.policies.items()):
            if (policy.service_namespace, policy.resource_id, policy.scalable_dimension) == (namespace, r_id, dimension):
                policy.delete_alarms(self.account_id, self.region_name)
                del self.policies[key]

    ApplicationAutoscalingBackend.deregister_scalable_target = deregister_scalable_target
