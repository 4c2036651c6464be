"""The Docker SDK wrapper: one context manager owns a container's whole life.

Build code sees a small interface (``call``, ``check_call``, ``put_tar``, ``export_stream``).
Host paths are :class:`~pathlib.Path`, container paths :class:`~pathlib.PurePosixPath`.
The container is removed in ``__exit__`` whatever happened (errors, Ctrl-C), unless
``MUSL_PBS_KEEP_CONTAINERS=1`` asks to keep it for debugging.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import tarfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, BinaryIO

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions

from builder.errors import ContainerCommandError, DockerUnavailableError, ImageNotFoundError
from builder.lowlevel.threads import join_all, offer, start_shielded

KEEP_ENV = "MUSL_PBS_KEEP_CONTAINERS"
_IDLE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]

OutputCallback = Callable[[str], None]

# What the SDK raises when the engine goes away under a request or a stream.
ENGINE_GONE: tuple[type[BaseException], ...] = (
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
    ConnectionError,  # the builtin: a reset or closed socket
)
_ENGINE_ERRORS: tuple[type[BaseException], ...] = (docker.errors.APIError, *ENGINE_GONE)


def docker_client() -> Any:
    """A connected Docker client, or a clear error saying how to start the engine."""
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        raise DockerUnavailableError(f"cannot reach the Docker engine: {e}") from None
    return client


@contextlib.contextmanager
def engine_errors(what: str) -> Iterator[None]:
    """The engine stopping (or failing) in the middle of ``what``, as a typed error."""
    try:
        yield
    except _ENGINE_ERRORS as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DockerUnavailableError(
            f"the Docker engine failed during {what}: {first}",
            hint="check that the engine is still running (`docker info`), then run the "
            "same command again: nothing half-done is kept",
        ) from None


def ensure_image(client: Any, ref: str, platform: str, *, hint: str = "") -> None:
    """Make sure ``ref`` is present locally; pull only when it is not."""
    try:
        client.images.get(ref)
        return
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as e:
        raise DockerUnavailableError(f"the Docker engine failed to look up {ref}: {e}") from None
    try:
        client.images.pull(ref, platform=platform)
    except (docker.errors.APIError, requests.exceptions.RequestException) as e:
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageNotFoundError(
            f"image {ref!r} ({platform}) is not present and could not be pulled: {first_line}",
            hint=hint or f"pull it (`docker pull --platform {platform} {ref}`) or pass --image",
        ) from None


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


_REMOVING: list[threading.Thread] = []  # containers being removed in the background


def finish_removals() -> None:
    """Wait until every container left with ``remove_later`` is removed."""
    join_all(_REMOVING)
    _REMOVING.clear()


class Container:
    """A running container, removed on exit. Use as a context manager."""

    def __init__(
        self,
        client: Any,
        image: str,
        *,
        platform: str,
        network: bool = True,
        purpose: str = "build",
        environment: Mapping[str, str] | None = None,
        binds: Mapping[Path, PurePosixPath] | None = None,
        remove_later: bool = False,
    ) -> None:
        """``binds``: host files or directories mounted read-only at container paths.
        ``remove_later``: after a block that ended without an error, remove the container
        in a thread (the engine takes a few tenths of a second to delete its files) while
        the caller goes on; :func:`finish_removals` waits for it. After an error, and
        without it, the container is removed before ``__exit__`` returns."""
        self._client = client
        self.image = image
        self.platform = platform
        self.network = network
        self.name = f"musl-pbs-{purpose}-{uuid.uuid4().hex[:12]}"
        self._environment = dict(environment or {})
        self._binds = dict(binds or {})
        self._container: Any = None
        self._remove_later = remove_later

    # -- lifetime -------------------------------------------------------------------------
    def __enter__(self) -> Container:
        kwargs: dict[str, Any] = {
            "name": self.name,
            "platform": self.platform,
            "detach": True,
            "environment": self._environment,
            # The pid lets a test (or a cleanup) find exactly the containers it made.
            "labels": {"org.musl-pbs": "1", "org.musl-pbs.pid": str(os.getpid())},
        }
        if not self.network:
            kwargs["network_mode"] = "none"
        if os.environ.get(KEEP_ENV) != "1":
            # Removed by the engine too once it stops, even if we never get to (the engine
            # stopped under us: it removes such containers when it starts again).
            kwargs["auto_remove"] = True
        if self._binds:
            kwargs["volumes"] = {str(host): {"bind": str(dest), "mode": "ro"}
                                 for host, dest in self._binds.items()}
        try:
            self._container = self._client.containers.create(
                self.image, _IDLE_COMMAND, **kwargs
            )
            self._container.start()
        except BaseException as e:
            self._remove()
            if isinstance(e, docker.errors.ImageNotFound):
                raise ImageNotFoundError(f"image {self.image!r} not found") from None
            if isinstance(e, docker.errors.APIError):
                raise DockerUnavailableError(
                    f"could not start a container from {self.image!r} ({self.platform}): {e}",
                    hint=_platform_hint(self.platform),
                ) from None
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self._remove_later and self._container is not None:
            remover = threading.Thread(target=self._remove_quietly, name=f"remove-{self.name}")
            _REMOVING.append(remover)
            start_shielded([remover])
            return
        self._remove()

    def _remove_quietly(self) -> None:
        with contextlib.suppress(Exception):  # the engine's auto_remove is the backstop
            self._remove()

    def _remove(self) -> None:
        if self._container is None:
            return
        if os.environ.get(KEEP_ENV) == "1":
            return
        try:
            self._container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError:
            # Removal raced with the engine; try once more by name.
            with contextlib.suppress(docker.errors.APIError, *ENGINE_GONE):
                self._client.api.remove_container(self.name, force=True, v=True)
        except ENGINE_GONE:
            pass  # the engine stopped: auto_remove removes the container when it restarts
        self._container = None

    # -- commands -------------------------------------------------------------------------
    def call(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: PurePosixPath | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        """Run ``argv`` in the container, streaming output; return its exit code and output."""
        api = self._client.api
        exec_id = api.exec_create(
            self._container.id,
            list(argv),
            environment=dict(env or {}),
            workdir=str(workdir) if workdir else None,
        )["Id"]
        chunks: list[str] = []
        pending = ""
        for raw in api.exec_start(exec_id, stream=True):
            text = raw.decode("utf-8", errors="replace")
            chunks.append(text)
            if on_output is not None:
                pending += text
                *lines, pending = pending.split("\n")
                for line in lines:
                    on_output(line)
        if on_output is not None and pending:
            on_output(pending)
        code = api.exec_inspect(exec_id)["ExitCode"]
        return ExecResult(int(code if code is not None else -1), "".join(chunks))

    def check_call(
        self,
        argv: Sequence[str],
        *,
        what: str,
        hint: str = "",
        env: Mapping[str, str] | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        result = self.call(argv, env=env, on_output=on_output)
        if result.exit_code != 0:
            raise ContainerCommandError(
                f"{what} failed in {self.image} (exit {result.exit_code}):\n{result.tail()}",
                hint=hint,
            )
        return result

    def disconnect_networks(self) -> None:
        """Take the running container off every network (after a step that needed one,
        such as `apk add`, and before the steps that must run without)."""
        self._container.reload()
        for name in list(self._container.attrs["NetworkSettings"]["Networks"]):
            self._client.networks.get(name).disconnect(self._container, force=True)

    def commit(self, repository: str, tag: str) -> str:
        """Save the container's filesystem as image ``repository:tag``; return its id."""
        image = self._container.commit(repository=repository, tag=tag)
        return str(image.id)

    # -- files ----------------------------------------------------------------------------
    def put_tar(self, dest: PurePosixPath, data: bytes | BinaryIO | Iterable[bytes]) -> None:
        """Unpack a tar stream (plain or gzip) into ``dest`` (created if missing). An
        iterable of chunks is sent as it is read (chunked transfer): memory stays bounded
        whatever the size of the stream."""
        self.check_call(["mkdir", "-p", str(dest)], what=f"mkdir {dest}")
        if not self._container.put_archive(str(dest), data):
            raise ContainerCommandError(f"could not copy files into {dest} of {self.name}")

    def read_file(self, path: PurePosixPath, limit: int = 64 << 20) -> bytes | None:
        """The bytes of the regular file ``path`` leads to (links followed inside the
        container), at most ``limit``; None when there is no such file."""
        real = self.call(["readlink", "-f", str(path)])
        target = real.output.strip() if real.exit_code == 0 else ""
        if not target.startswith("/"):
            return None
        try:
            chunks, _stat = self._container.get_archive(target)
        except docker.errors.NotFound:
            return None
        buf = io.BytesIO()
        for chunk in chunks:
            buf.write(chunk)
            if buf.tell() > limit + (1 << 20):
                return None
        buf.seek(0)
        with tarfile.open(fileobj=buf, mode="r") as tar:
            member = next((m for m in tar if m.isfile()), None)
            f = tar.extractfile(member) if member is not None else None
            return f.read(limit) if f is not None else None

    def put_files(self, dest: PurePosixPath, files: Iterable[tuple[str, Path]]) -> None:
        """Copy host files into ``dest`` under the given names."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, path in files:
                tar.add(str(path), arcname=name, recursive=True)
        self.put_tar(dest, buf.getvalue())

    @contextlib.contextmanager
    def export_stream(self) -> Iterator[ChunkReader]:
        """The container's filesystem as a tar stream, read once (``docker export``).

        A thread reads ahead (up to 16 MiB), so the engine writes the tar while the caller
        creates files, instead of each waiting on the other."""
        chunks = self._container.export(chunk_size=1 << 20)
        reader = ChunkReader(chunks, self.name, ahead=16)
        try:
            yield reader
        finally:
            reader.close()
            with contextlib.suppress(Exception):
                chunks.close()


_END = b""


class ChunkReader(io.RawIOBase):
    """A file object over the chunks of an HTTP response (the Docker SDK's generators);
    with ``ahead``, a thread fetches up to that many chunks before they are asked for."""

    def __init__(self, chunks: Iterator[bytes], what: str, ahead: int = 0) -> None:
        self._chunks = chunks
        self._what = what
        self._buffer = bytearray()
        self._ended = False
        self._queue: queue.Queue[bytes | BaseException] | None = None
        self._stop = threading.Event()
        self._pump: threading.Thread | None = None
        if ahead > 0:
            self._queue = queue.Queue(maxsize=ahead)
            self._pump = threading.Thread(target=self._fetch_ahead, name="export-reader",
                                          daemon=True)
            start_shielded([self._pump])  # as pack starts its threads (lowlevel/threads)

    def _offer(self, item: bytes | BaseException) -> bool:
        assert self._queue is not None
        return offer(self._queue, item, self._stop)

    def _fetch_ahead(self) -> None:
        try:
            for chunk in self._chunks:
                if chunk and not self._offer(chunk):
                    return
            self._offer(_END)
        except BaseException as e:  # handed to the reader, raised there
            self._offer(e)

    def _next_chunk(self) -> bytes:
        if self._queue is None:
            return next(self._chunks, _END)
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop reading ahead (the thread ends after the chunk it is waiting for)."""
        self._stop.set()
        if self._pump is not None and self._pump is not threading.current_thread():
            self._pump.join(timeout=2)
        super().close()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._ended and (size < 0 or len(self._buffer) < size):
            try:
                chunk = self._next_chunk()
            except _ENGINE_ERRORS as e:
                raise DockerUnavailableError(
                    f"the export of {self._what} broke off: {e}",
                    hint="check that the engine is still running (`docker info`), then run "
                    "the same command again: nothing half-done is kept",
                ) from None
            if not chunk:
                self._ended = True
                break
            self._buffer += chunk
        if size < 0 or size > len(self._buffer):
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

def _platform_hint(platform: str) -> str:
    if platform.endswith("amd64"):
        return "check `docker info`; the engine must be able to run containers"
    return (
        f"running {platform} containers needs qemu-user-static registered with binfmt_misc "
        "(`apt-get install qemu-user-static`, then see README: Foreign architectures)"
    )
