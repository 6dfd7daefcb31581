"""Entry point of the sandbox's moto server process: emulator settings first, then moto's own server.

The MOTO_* settings must be in the environment before moto is imported (notes/moto-5.2.5.md).
"""

from __future__ import annotations

import logging
import os
import sys

EMULATOR_SETTINGS = {
    # AWS-managed policies (e.g. for ECS) exist only when loaded before IAM is first used.
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
    # ACM certificates become ISSUED after this many seconds (AWS: minutes, after DNS validation).
    "MOTO_ACM_VALIDATION_WAIT": "2",
    # ECS services report this many running tasks, so services_stable can succeed.
    "MOTO_ECS_SERVICE_RUNNING": "2",
}
# GOLIVE_EMULATOR_DELAYS (golive/sandbox/transitions.py) holds resources in their transitional states for as
# long as AWS would (scaled): unset, everything is available at once, as above.


def install_emulation() -> None:
    """Where moto falls short of what the runbook needs AWS to do, the sandbox emulates it (DESIGN.md,
    "One code path"): ECR keeps pushed blobs, ECS runs tasks, RDS gives its instance a real login,
    ElastiCache deletes subnet groups and finishes deleting replication groups, a deregistered scalable
    target takes its scaling policies and their alarms with it; IAM, when enforcement is turned on, checks
    the actions AWS would (iam_emulation.py says what it cannot); and, when asked, resources take as long
    as AWS's."""
    from golive.sandbox import (autoscaling_emulation, ecr_emulation, ecs_emulation, elasticache_emulation,
                                iam_emulation, rds_emulation, transitions)

    autoscaling_emulation.install()
    ecr_emulation.install()
    elasticache_emulation.install()
    ecs_emulation.install()
    rds_emulation.install()
    iam_emulation.install()
    transitions.install()  # last: it wraps the create calls the others may have replaced


def load_managed_policies_once_and_only_where_used() -> None:
    """AWS-managed IAM policies (MOTO_IAM_LOAD_MANAGED_POLICIES, above) parsed once per process and made
    only in the "aws" partition. moto 5.2.5 parses its 4.7 MB catalogue of 1,582 policies again for every
    IAM backend; a reset rebuilds each existing backend before dropping it, and the first request after it
    makes one per partition again (six: looking up the caller's account visits each), so the policies were
    made twelve times a reset, more than a second of the emulator's CPU (py-spy: 27 % of moto's CPU in
    tests/test_phases_2_to_4.py, and a reset starts every test); now twice. The sandbox's regions are all in
    the "aws" partition (golive/config.py accepts botocore's regions only), so no call reaches another;
    there the policies stay as moto makes them."""
    import json

    from moto.iam import models

    catalogue = json.loads(models.aws_managed_policies_data)

    def init_aws_policies(self) -> list:
        if not models.load_iam_aws_managed_policies() or self.partition != "aws":
            return []
        return [models.AWSManagedPolicy.from_data(name, self.account_id, self.region_name, data)
                for name, data in catalogue.items()]

    models.IAMBackend._init_aws_policies = init_aws_policies


def main(argv: list[str]) -> None:
    for key, value in EMULATOR_SETTINGS.items():
        os.environ.setdefault(key, value)
    host = argv[argv.index("-H") + 1] if "-H" in argv else "127.0.0.1"
    port = argv[argv.index("-p") + 1] if "-p" in argv else "5000"
    os.environ["GOLIVE_SANDBOX_ENDPOINT"] = f"http://{host}:{port}"  # what the sandbox's tasks call AWS at
    # werkzeug logs every request; keep the log for errors.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    load_managed_policies_once_and_only_where_used()
    install_emulation()
    # ACM's first certificate would otherwise initialize OpenSSL's bindings (0.4 s) inside a go-live's step.
    from cryptography.hazmat.backends import default_backend

    default_backend()
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
