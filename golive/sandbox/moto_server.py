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


def main(argv: list[str]) -> None:
    for key, value in EMULATOR_SETTINGS.items():
        os.environ.setdefault(key, value)
    # werkzeug logs every request; keep the log for errors.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from golive.sandbox import ecs_deployments

    ecs_deployments.install()
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
