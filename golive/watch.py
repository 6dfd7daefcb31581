"""Run a deployment and follow it from the terminal: state changes, the go-live's progress artifact, and
at the end its markdown report. What the Prefect UI shows, in a terminal."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from rich.console import Console


@dataclass
class Outcome:
    flow_run_id: str
    state: str
    message: str
    completed: bool


async def _watch(name: str, parameters: dict, timeout: float, console: Console) -> Outcome:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter,
                                                FlowRunFilterParentFlowRunId, LogFilter, LogFilterFlowRunId)
    from prefect.client.schemas.sorting import LogSort
    from prefect.deployments import run_deployment

    flow_run = await run_deployment(name, parameters=parameters, timeout=0)
    console.print(f"started {name}: flow run {flow_run.name} ({flow_run.id})")
    deadline = time.monotonic() + timeout
    seen_state, seen_logs, paused_told = None, 0, False
    async with get_client() as client:
        while True:
            current = await client.read_flow_run(flow_run.id)
            state = current.state
            if state and state.name != seen_state:
                seen_state = state.name
                console.print(f"  {time.strftime('%H:%M:%S')} {name}: {state.name}")
            # Every step the go-live logs ("go-live: ... (k of n)"), not only the progress bar's latest.
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])),
                                          sort=LogSort.TIMESTAMP_ASC, offset=seen_logs)
            seen_logs += len(logs)
            for log in logs:
                if log.message.startswith("go-live: ") or log.level >= 30:
                    style = "cyan" if log.level < 30 else "yellow"
                    console.print(f"  {log.timestamp:%H:%M:%S} [{style}]{log.message.removeprefix('go-live: ')}[/]")
            if state and state.is_final():
                break
            if state and state.is_paused() and seen_state == state.name and not paused_told:
                paused_told = True
                console.print("  paused: approve it in the Prefect UI (Resume, then fill in the approval form)")
            if time.monotonic() > deadline:
                return Outcome(str(flow_run.id), state.name if state else "unknown", "still running when the wait ended",
                               False)
            await asyncio.sleep(2)
        artifacts = await client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))
        report = next((a for a in artifacts if a.key and a.key.endswith("go-live-report")), None)
        if report is not None:
            from golive.terminal import readable_markdown

            console.print(readable_markdown(report.data, console))
        elif not state.is_completed():
            # The failing child says why: show the innermost failed run's message.
            children = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run.id])))
            for child in children:
                if child.state and child.state.is_failed():
                    console.print(f"  [red]{child.name}: {child.state.message}[/]")
    return Outcome(str(flow_run.id), state.name, state.message or "", state.is_completed())


def run_and_watch(name: str, parameters: dict, timeout: float, console: Console) -> Outcome:
    return asyncio.run(_watch(name, parameters, timeout, console))
