"""The deploy policy and parliament's findings are kept on disk between processes (golive/permissions.py
`_kept`): the same answer as computing them, a second process that does not import parliament at all, a
new entry when an input changes, and a cache that cannot be written only costs the time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from golive import permissions
from tests.conftest import REPO

ACCOUNT = "123456789012"
SECOND_PROCESS = """
import json, sys
from golive import permissions
policy = permissions.deploy_policy("sandbox", "us-east-1", "123456789012")
print(json.dumps({"parliament_imported": "parliament" in sys.modules, "policy": policy}))
"""


def test_a_kept_policy_is_the_computed_one_and_spares_the_next_process_parliament(tmp_path, monkeypatch):
    monkeypatch.setenv("GOLIVE_STATE_DIR", str(tmp_path))
    kept = permissions.deploy_policy("sandbox", "us-east-1", ACCOUNT)
    assert kept == permissions._deploy_policy(permissions.deploy_actions(), "sandbox", "us-east-1", ACCOUNT)
    assert [p.name.split("-")[:2] for p in (tmp_path / "cache").iterdir()] == [["deploy", "policy"]]
    env = {**os.environ, "GOLIVE_STATE_DIR": str(tmp_path)}
    second = subprocess.run([sys.executable, "-c", SECOND_PROCESS], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120, check=True)
    answer = json.loads(second.stdout)
    assert answer["policy"] == kept
    assert answer["parliament_imported"] is False, "the second process computed the policy again"


def test_changed_actions_make_a_new_entry_and_an_unwritable_cache_still_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("GOLIVE_STATE_DIR", str(tmp_path))
    full = permissions.deploy_policy("sandbox", "us-east-1", ACCOUNT)
    needed = permissions.deploy_actions()
    monkeypatch.setattr(permissions, "deploy_actions", lambda: needed - {"ec2:CreateVpc"})
    narrower = permissions.deploy_policy("sandbox", "us-east-1", ACCOUNT)
    assert "ec2:CreateVpc" in json.dumps(full) and "ec2:CreateVpc" not in json.dumps(narrower)
    assert len(list((tmp_path / "cache").iterdir())) == 2

    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("GOLIVE_STATE_DIR", str(blocked))  # <state>/cache cannot be made under a file
    assert permissions.deploy_policy("sandbox", "us-east-1", ACCOUNT) == narrower


def test_policy_findings_are_kept_per_document(tmp_path, monkeypatch):
    monkeypatch.setenv("GOLIVE_STATE_DIR", str(tmp_path))
    unknown_condition = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"StringEquals": {"aws:nope": "x"}}}]}
    clean = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                      "Resource": "arn:aws:s3:::golive-sandbox-static/*"}]}
    findings = permissions.lint(unknown_condition)
    assert [f["issue"] for f in findings] == ["UNKNOWN_CONDITION_FOR_ACTION"]
    assert permissions.lint(unknown_condition) == findings == permissions._lint(unknown_condition, "LOW")
    assert permissions.lint(clean) == []
    assert len(list((tmp_path / "cache").glob("lint-*.json"))) == 2
