"""Helper threads started with the stop signals held back (builder.lowlevel.threads)."""

from __future__ import annotations

import signal
import threading

import pytest

from builder.lowlevel.threads import STOP_SIGNALS, join_all, start_shielded


def test_threads_start_with_the_stop_signals_blocked_and_the_mask_comes_back() -> None:
    seen: list[set[int]] = []
    thread = threading.Thread(
        target=lambda: seen.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, []))))
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    start_shielded([thread])
    thread.join()
    assert seen[0] >= STOP_SIGNALS  # the thread itself never takes one
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


def test_a_signal_during_the_start_is_taken_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM sent while the thread starts: handled once start_shielded is done."""
    order: list[str] = []

    def handler(signum: int, frame: object) -> None:
        order.append("signal")
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    start = threading.Thread.start

    def start_and_signal(self: threading.Thread) -> None:
        signal.raise_signal(signal.SIGTERM)  # blocked: stays pending
        start(self)
        order.append("started")

    monkeypatch.setattr(threading.Thread, "start", start_and_signal)
    thread = threading.Thread(target=lambda: None)
    try:
        with pytest.raises(KeyboardInterrupt):
            start_shielded([thread])
    finally:
        signal.signal(signal.SIGTERM, previous)
    join_all([thread])
    assert order == ["started", "signal"] and not thread.is_alive()


def test_join_all_waits_through_another_ctrl_c() -> None:
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    calls = []
    join = thread.join

    def interrupted_once(timeout: float | None = None) -> None:
        calls.append(1)
        if len(calls) == 1:
            release.set()
            raise KeyboardInterrupt
        join(timeout)

    thread.join = interrupted_once  # type: ignore[method-assign]
    join_all([thread, threading.Thread(target=lambda: None)])  # the second never started
    assert len(calls) == 2 and not thread.is_alive()
