"""Run the `golive` CLI, but SIGKILL the process the moment AWS has answered a chosen operation.

Fault injection for the resume test: the resource exists in AWS, nothing in our process recorded it.
Usage: GOLIVE_TEST_KILL_AFTER=CreateNatGateway python -m tests.kill_after apply sandbox
"""

from __future__ import annotations

import os
import signal
import sys
from unittest import mock

import golive.aws

OPERATION = os.environ["GOLIVE_TEST_KILL_AFTER"]
_original_init = golive.aws.Aws.__init__


def _init_with_tripwire(self, target):
    _original_init(self, target)

    def die(event_name: str, **_):
        if event_name.endswith("." + OPERATION):
            os.kill(os.getpid(), signal.SIGKILL)

    self.on("after-call", die)


if __name__ == "__main__":
    with mock.patch.object(golive.aws.Aws, "__init__", _init_with_tripwire):
        from golive.cli import main

        sys.argv = ["golive", *sys.argv[1:]]
        main()
