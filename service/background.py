"""The shape of the service's background loops: a daemon thread running ``_run`` until
``stop()`` sets ``_stop`` (which the loop waits on, so stopping is prompt)."""

from __future__ import annotations

import threading


class BackgroundThread:
    thread_name = "background"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        raise NotImplementedError
