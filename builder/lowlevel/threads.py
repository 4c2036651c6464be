"""Starting helper threads so that Ctrl-C cannot land half-way through ``Thread.start``.

A signal handled inside ``Thread.start`` (cli turns SIGINT, SIGTERM and SIGHUP into
KeyboardInterrupt) can leave a thread that runs yet is not alive to ``join`` — a
compressor that creates its file after pack removed the temporary names, a container
nobody removes. With the signals blocked while the threads start, one that arrives
meanwhile is taken right after, once every thread runs; the threads, created with the
signals blocked, never take one (Python runs handlers in the main thread anyway).
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Iterable
from typing import TypeVar

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
POLL = 0.1  # seconds between looks at a stop flag while a queue is full or empty
T = TypeVar("T")


def start_shielded(threads: Iterable[threading.Thread]) -> None:
    """``start()`` each of ``threads`` with the stop signals held back."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for thread in threads:
            thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def join_all(threads: Iterable[threading.Thread]) -> None:
    """Wait for every started thread; another Ctrl-C meanwhile does not stop the wait
    (the caller has already told them to stop, or they end on their own)."""
    pending = list(threads)
    while True:
        try:
            for thread in pending:
                if thread.ident is not None:
                    thread.join()
            return
        except KeyboardInterrupt:
            continue


def offer(q: queue.Queue[T], item: T, stop: threading.Event) -> bool:
    """Put ``item`` into the bounded ``q``, waiting for room; False, without putting it,
    once ``stop`` is set (the other side gave up and will not make room)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL)
            return True
        except queue.Full:
            continue
    return False
