"""Imported first by every benchmark: telemetry off, and a state directory of its own (so a benchmark never
touches the sandbox `make go-live` runs), all before Prefect or great-expectations is imported."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", GX_ANALYTICS_ENABLED="false",
                  PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="ERROR")
os.environ["GOLIVE_STATE_DIR"] = tempfile.mkdtemp(prefix="golive-bench-")
os.environ.setdefault("PREFECT_HOME", str(Path(os.environ["GOLIVE_STATE_DIR"]) / "prefect"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
STATE_DIR = Path(os.environ["GOLIVE_STATE_DIR"])
