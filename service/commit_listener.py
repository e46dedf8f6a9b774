"""Hears of commits made by other processes at once: ``LISTEN`` on the event store's channel.

Every append transaction (``service/store.py``) sends ``NOTIFY`` on the library's channel;
PostgreSQL delivers it when the transaction commits. Within one process the writer calls the
store's ``committed_listeners`` itself; a separate ``worker`` process (or another API process)
learned of those commits only by polling every ``poll_interval`` (0.5 s). This thread keeps a
connection listening and calls its callbacks on each notification, so a projector in another
process starts on a commit within a round trip. Polling stays as the fallback: a notification
lost while the connection was down is made up by the next poll.

It listens only while ``active()`` (the projector's leader): receiving every commit's
notification costs the process CPU, and a standby has nothing to do with them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import psycopg
from psycopg import sql

from service.background import BackgroundThread

log = logging.getLogger(__name__)


class CommitListener(BackgroundThread):
    thread_name = "commit-listener"

    def __init__(self, conninfo: str, channel: str, callbacks: Sequence[Callable[[], None]],
                 active: Callable[[], bool] = lambda: True):
        super().__init__()
        self.conninfo = conninfo
        self.active = active
        self.channel = channel
        self.callbacks = list(callbacks)
        self.connected = threading.Event()  # set while LISTEN is in force (tests wait on it)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.active():
                self._stop.wait(0.5)
                continue
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.connected.set()
                    self._fire()  # whatever committed while nobody listened
                    while not self._stop.is_set() and self.active():
                        # A burst of commits is one wake-up: drain what is queued, then call.
                        if any(True for _ in conn.notifies(timeout=0.5, stop_after=1)):
                            for _ in conn.notifies(timeout=0):
                                pass
                            self._fire()
                self.connected.clear()
            except Exception:
                self.connected.clear()
                if self._stop.is_set():
                    return
                log.warning("commit listener lost its connection; reconnecting in 1 s",
                            exc_info=True)
                self._stop.wait(1.0)
        self.connected.clear()

    def _fire(self) -> None:
        for callback in self.callbacks:
            try:
                callback()
            except Exception:  # a callback must never stop the listener
                log.exception("commit listener callback failed")
