"""Live progress for a terminal: the CLI subscribes, the engine emits each resource's change as it lands.

Flows run in the CLI's own process (threads for concurrent tasks), so a listener list is enough; under a
Prefect worker nobody listens and the same lines reach the run log instead.
"""

from __future__ import annotations

import threading
from typing import Callable

from golive.changes import Change

Listener = Callable[[Change], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def subscribe(listener: Listener) -> None:
    with _lock:
        _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def emit(change: Change) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(change)
