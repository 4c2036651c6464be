"""`build --jobs` runs targets in worker processes: against the real engine, Ctrl-C in the
parent reaches every worker, and each removes its container."""

from __future__ import annotations

import _thread
import io
import subprocess
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from builder.config import load_matrix, load_recipe
from builder.multi import Built, LogReporter, Runner
from builder.plan import Target, select
from builder.stages.acquire import acquire

from .conftest import images_for

pytestmark = pytest.mark.docker


def _containers_of(pids: list[int]) -> list[str]:
    found = []
    for pid in pids:
        out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=org.musl-pbs.pid={pid}"],
                             capture_output=True, text=True, check=True)
        found += out.stdout.split()
    return found


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_reaches_every_worker_and_its_container_goes(tmp_path: Path) -> None:
    image = images_for("x86_64", "3.11")[0]
    targets: list[Target] = select(load_matrix(), ["3.22:x86_64", "3.23:x86_64"])
    seen: list[str] = []

    def job(target: Target, reporter: LogReporter) -> Built:
        acquire(arch=target.arch, image=image, recipe=load_recipe("3.11"),
                out_dir=tmp_path / target.name.replace(":", "-"), reporter=reporter)
        return Built(tmp_path / "never")

    runner = Runner(targets, job, 2, tmp_path / "logs", Console(file=io.StringIO()))

    def interrupt_when_both_have_containers() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len(runner.worker_pids) == 2 and len(_containers_of(runner.worker_pids)) == 2:
                seen.extend(_containers_of(runner.worker_pids))
                break
            time.sleep(0.2)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_when_both_have_containers, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    assert len(seen) == 2, "both workers had a container running when Ctrl-C came"
    assert _containers_of(runner.worker_pids) == []
