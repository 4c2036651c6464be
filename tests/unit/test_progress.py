"""StepTimer: passes every call on and times each stage() step up to the next one."""

from __future__ import annotations

from builder.commands.build_cmd import stage_seconds
from builder.progress import StepTimer


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def stage(self, name: str, message: str) -> None:
        self.calls.append(("stage", name, message))

    def detail(self, message: str) -> None:
        self.calls.append(("detail", message))

    def output(self, line: str) -> None:
        self.calls.append(("output", line))


def test_steps_are_timed_and_calls_pass_through() -> None:
    inner = Recorder()
    timer = StepTimer(inner)
    timer.stage("acquire", "apk add")
    timer.output("OK: 12 packages")
    timer.stage("acquire", "exporting")
    timer.detail("1,684 members")
    timer.stage("pack", "compressing")
    steps = timer.finish()
    assert inner.calls == [("stage", "acquire", "apk add"), ("output", "OK: 12 packages"),
                           ("stage", "acquire", "exporting"), ("detail", "1,684 members"),
                           ("stage", "pack", "compressing")]
    assert [(s["stage"], s["step"]) for s in steps] == [
        ("acquire", "apk add"), ("acquire", "exporting"), ("pack", "compressing"),
        ("total", "")]
    assert all(isinstance(s["seconds"], float) and s["seconds"] >= 0 for s in steps)
    parts = sum(float(s["seconds"]) for s in steps[:-1])
    assert parts <= float(steps[-1]["seconds"]) + 0.01  # the steps lie within the total


def test_stage_seconds_sums_steps_per_stage() -> None:
    steps = [{"stage": "acquire", "step": "a", "seconds": 1.2},
             {"stage": "acquire", "step": "b", "seconds": 2.0},
             {"stage": "pack", "step": "c", "seconds": 0.5},
             {"stage": "total", "step": "", "seconds": 4.0}]
    assert stage_seconds(steps) == "acquire 3.2s, pack 0.5s"
