"""Run the `golive` CLI with one method raising, as an unexpected bug in a step would.

Fault injection for the one-line error test. Usage:
GOLIVE_TEST_FAIL=tasks.registry:Repository.desired python -m tests.fail_step plan sandbox --phase 2
"""

from __future__ import annotations

import importlib
import os
import sys
from unittest import mock

if __name__ == "__main__":
    module, attribute = os.environ["GOLIVE_TEST_FAIL"].split(":")
    owner, method = attribute.split(".")
    target = getattr(importlib.import_module(module), owner)
    with mock.patch.object(target, method, side_effect=TypeError("injected: a bug in this step")):
        from golive.cli import main

        sys.argv = ["golive", *sys.argv[1:]]
        main()
