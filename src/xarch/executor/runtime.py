"""Find a working OCI runtime (crun, runc) and run one container to completion.

Detection does not trust ``--version``: crun 1.8 installs fine and then refuses every container
on hosts with hybrid cgroups v1/v2 ("cgroups in hybrid mode not supported"). The prober does a
real trial run of a trivial container (host ``/bin/true`` with the host's ``/usr`` bind-mounted
read-only) and remembers the verdict per prober object, so tests can use fresh ones.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Interrupted lives in xarch.errors so the CLI can catch it without importing this module.
from xarch.errors import Interrupted, RuntimeFailure, UsageError, XarchError

DEFAULT_PREFERENCE: tuple[str, ...] = ("crun", "runc")
_TAIL_LINES = 20
_TAIL_BYTES = 64 * 1024


class ContainerExitError(RuntimeFailure):
    """The step's process ran and exited non-zero (or the runtime could not start it)."""

    def __init__(
        self,
        message: str,
        *,
        exit_code: int,
        runtime_name: str,
        output_tail: str,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code
        self.runtime_name = runtime_name
        self.output_tail = output_tail


class ContainerTimeout(RuntimeFailure):
    """The step did not finish within its timeout and was killed."""


class Cancelled(XarchError):
    """The build (or run) was cancelled: a step was stopped, or refused to start."""

    exit_code = 130


def note_stopped(exc: BaseException | None, kind: str, n: int = 1) -> None:
    """Count ``n`` stopped ``kind``s (``step``, ``container``) on ``exc`` if it is an Interrupted."""
    if isinstance(exc, Interrupted) and n:
        exc.stopped[kind] += n


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    path: str
    version: str


@dataclass(frozen=True)
class RuntimeCandidate:
    """What probing one runtime found; ``reason`` says why it is (not) usable."""

    name: str
    path: str | None
    version: str
    usable: bool
    reason: str

    def info(self) -> RuntimeInfo:
        assert self.path is not None
        return RuntimeInfo(self.name, self.path, self.version)


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    runtime_name: str
    duration: float
    output_tail: str


# ----------------------------------------------------------------------------- cgroups


def cgroup_mode(root: Path = Path("/sys/fs/cgroup")) -> str:
    """ "v2" (unified), "hybrid" (v1 controllers + cgroup2 at unified/), "v1", or "none"."""
    if (root / "cgroup.controllers").exists():
        return "v2"
    has_unified = (root / "unified" / "cgroup.controllers").exists() or (
        (root / "unified").is_dir() and _is_cgroup2_mount(root / "unified")
    )
    has_v1 = any(
        (root / c).is_dir() for c in ("memory", "cpu", "pids", "devices", "cpuset", "freezer")
    )
    if has_v1 and has_unified:
        return "hybrid"
    if has_v1:
        return "v1"
    return "none"


def _is_cgroup2_mount(path: Path) -> bool:
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) >= 5 and fields[4] == str(path) and right.startswith("cgroup2 "):
                return True
    except OSError:
        pass
    return False


# ----------------------------------------------------------------------------- running


def _tail(buf: bytes) -> str:
    lines = buf.decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-_TAIL_LINES:])


def _runtime_cmd(runtime: RuntimeInfo, state_root: Path | None, *args: str) -> list[str]:
    cmd = [runtime.path]
    if state_root is not None:
        cmd += ["--root", str(state_root)]
    return [*cmd, *args]


def _delete(runtime: RuntimeInfo, state_root: Path | None, cid: str) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            _runtime_cmd(runtime, state_root, "delete", "-f", cid),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
            start_new_session=True,  # a second Ctrl-C at the terminal must not cut cleanup short
        )


def _kill(runtime: RuntimeInfo, state_root: Path | None, cid: str) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            _runtime_cmd(runtime, state_root, "kill", cid, "KILL"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
            start_new_session=True,
        )


_POLL = 0.1  # how often a waiting run() looks at its registry's cancel flag
_REKILL = 0.25


def _stop(proc: subprocess.Popen[bytes], kill: Callable[[], None], *, budget: float) -> None:
    """Kill the container until its runtime process returns: a kill that comes before the
    runtime has created the container finds nothing, so it is repeated. Last resort after
    ``budget`` seconds: kill the runtime process itself (``delete -f`` then takes the rest)."""
    end = time.monotonic() + budget
    while True:
        kill()
        try:
            proc.wait(timeout=_REKILL)
            return
        except subprocess.TimeoutExpired:
            if time.monotonic() >= end:
                break
    proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _wait(
    proc: subprocess.Popen[bytes],
    deadline: float | None,
    containers: Containers | None,
    kill: Callable[[], None],
) -> int | None:
    """The runtime's exit code; None once ``deadline`` passed. After ``containers`` is
    cancelled, the container is killed again every so often until the runtime returns (the
    registry's own kill may have come before the container existed)."""
    last_kill = float("-inf")
    while True:
        step = None if containers is None else _POLL
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            step = left if step is None else min(step, left)
        try:
            return proc.wait(timeout=step)
        except subprocess.TimeoutExpired:
            pass
        if containers is not None and containers.cancelled:
            now = time.monotonic()
            if now - last_kill >= _REKILL:
                kill()
                last_kill = now


class Containers:
    """The containers one build (or one ``xarch run``) has started, so a cancel stops them all.

    :func:`run` registers a container before it starts it and forgets it once deleted.
    :meth:`cancel` kills every live one with ``<runtime> kill ID KILL`` (a RUN under QEMU is a
    container whose process is qemu: stopped the same way; the pid namespace takes every
    child along) and from then on :func:`run` refuses to start any. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, tuple[RuntimeInfo, Path | None]] = {}
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def live(self) -> list[str]:
        with self._lock:
            return sorted(self._live)

    def add(self, cid: str, runtime: RuntimeInfo, state_root: Path | None) -> None:
        with self._lock:
            if self._cancelled.is_set():
                raise Cancelled(f"not starting container {cid}: cancelled")
            self._live[cid] = (runtime, state_root)

    def discard(self, cid: str) -> None:
        with self._lock:
            self._live.pop(cid, None)

    def cancel(self) -> int:
        """Refuse new containers and kill the running ones; returns how many were running."""
        with self._lock:
            self._cancelled.set()
            live = list(self._live.items())
        for cid, (runtime, state_root) in live:
            _kill(runtime, state_root, cid)
        return len(live)


def remove_containers(runtime: RuntimeInfo, state_root: Path) -> list[str]:
    """Kill and delete every container whose state lives in ``state_root`` (what a process
    that died still had running); returns the ids found. Both runc and crun keep one
    directory per container id there."""
    try:
        ids = sorted(p.name for p in state_root.iterdir() if p.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    for cid in ids:
        _kill(runtime, state_root, cid)
        _delete(runtime, state_root, cid)
    return ids


def _looks_like_runtime_error(runtime_name: str, tail: str) -> bool:
    markers = (
        "runc run failed",
        "runc create failed",
        "crun: ",
        "OCI runtime",
        "container_linux.go",
    )
    return any(m in tail for m in markers) or tail.startswith(f"{runtime_name}:")


_CAP_SYS_RESOURCE = 24


def _has_cap(cap: int) -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> cap & 1)
    except (OSError, ValueError):
        pass
    return False


def clamp_rlimits(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` whose RLIMIT_NOFILE fits what this process may grant.

    Raising a hard limit needs CAP_SYS_RESOURCE (and never exceeds fs.nr_open); sandboxes often
    drop that capability, and then runc/crun fail with "setrlimit: operation not permitted".
    Lowering to our own hard limit is what the runtime could do at best anyway.
    """
    out = json.loads(json.dumps(spec))
    hard_now = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    try:
        nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        nr_open = hard_now
    ceiling = nr_open if _has_cap(_CAP_SYS_RESOURCE) else hard_now
    if ceiling == resource.RLIM_INFINITY:
        return out
    for rl in out.get("process", {}).get("rlimits", []):
        if rl.get("type") == "RLIMIT_NOFILE":
            rl["hard"] = min(int(rl["hard"]), ceiling)
            rl["soft"] = min(int(rl["soft"]), rl["hard"])
    return out


def run(
    spec: Mapping[str, Any],
    bundle_dir: Path,
    *,
    runtime: RuntimeInfo,
    stdin: bytes | None = None,
    stdout_cb: Callable[[bytes], None] | None = None,
    timeout: float | None = None,
    state_root: Path | None = None,
    container_id: str | None = None,
    containers: Containers | None = None,
) -> RunResult:
    """Run ``spec`` in ``bundle_dir`` with ``runtime`` until the process exits.

    stdout and stderr are merged and streamed to ``stdout_cb`` chunk by chunk. The container's
    state is always deleted, also on errors, timeouts and interrupts (a ``BaseException``
    while waiting kills the container first). A non-zero exit raises
    :class:`ContainerExitError` carrying the exit code and the last lines of output. With
    ``containers``, the container is registered there while it lives; once that registry is
    cancelled the container is killed and :class:`Cancelled` raised.
    """
    if spec.get("process", {}).get("terminal"):
        raise UsageError(
            "interactive terminals are not supported for build steps (process.terminal=true)"
        )
    bundle_dir.mkdir(parents=True, exist_ok=True)
    (bundle_dir / "config.json").write_text(json.dumps(clamp_rlimits(spec), indent=1))
    cid = container_id or f"xarch-{uuid.uuid4().hex[:16]}"
    if state_root is not None:
        state_root.mkdir(parents=True, exist_ok=True)
    cmd = _runtime_cmd(runtime, state_root, "run", "--bundle", str(bundle_dir), cid)

    tail = collections.deque[bytes]()
    tail_size = 0
    lock = threading.Lock()

    cb_errors: list[BaseException] = []

    def pump(stream: Any) -> None:
        nonlocal tail_size
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                return
            with lock:
                tail.append(chunk)
                tail_size += len(chunk)
                while tail_size > _TAIL_BYTES and len(tail) > 1:
                    tail_size -= len(tail.popleft())
            if stdout_cb is not None and not cb_errors:
                try:
                    stdout_cb(chunk)
                except BaseException as e:  # keep draining: a full pipe would hang the step
                    cb_errors.append(e)

    if containers is not None:
        containers.add(cid, runtime, state_root)

    def kill() -> None:
        _kill(runtime, state_root, cid)

    start = time.monotonic()
    try:
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=bundle_dir,
                start_new_session=True,
            )
        except OSError as e:
            raise RuntimeFailure(
                f"cannot execute OCI runtime {runtime.path}: {e.strerror}",
                hint="run `xarch doctor` to see which runtimes work here",
            ) from e
        reader = threading.Thread(target=pump, args=(proc.stdout,), daemon=True)
        reader.start()
        if stdin is not None and proc.stdin is not None:
            writer = threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True)
            writer.start()
        try:
            code = _wait(proc, None if timeout is None else start + timeout, containers, kill)
        except BaseException as e:
            # Interrupted while waiting (Ctrl-C, a signal): the container must not outlive us.
            _stop(proc, kill, budget=1.0)
            note_stopped(e, "container")
            raise
        if code is None:
            _stop(proc, kill, budget=10.0)
            reader.join(timeout=5)
            with lock:
                t = _tail(b"".join(tail))
            raise ContainerTimeout(
                f"build step timed out after {timeout:g}s and was killed ({runtime.name}, container {cid})"
                + (f"; last output:\n{t}" if t else "")
            ) from None
        reader.join(timeout=30)
    finally:
        _delete(runtime, state_root, cid)
        if containers is not None:
            containers.discard(cid)
    if containers is not None and containers.cancelled:
        raise Cancelled(
            f"build step {spec.get('process', {}).get('args', [])!r} was stopped: cancelled "
            f"({runtime.name}, container {cid})"
        )
    duration = time.monotonic() - start
    if cb_errors:
        raise cb_errors[0]
    with lock:
        t = _tail(b"".join(tail))
    if code != 0:
        if code < 0:
            code = 128 - code  # killed by signal N -> 128+N, like a shell reports it
        args = spec.get("process", {}).get("args", [])
        if _looks_like_runtime_error(runtime.name, t):
            msg = f"{runtime.name} could not start the build step {args!r} (exit code {code})"
            hint = "run `xarch doctor` to check the runtime, cgroups and emulation"
        else:
            msg = f"build step {args!r} failed with exit code {code} ({runtime.name})"
            hint = None
        raise ContainerExitError(
            msg + (f"; last output:\n{t}" if t else ""),
            exit_code=code,
            runtime_name=runtime.name,
            output_tail=t,
            hint=hint,
        )
    return RunResult(exit_code=0, runtime_name=runtime.name, duration=duration, output_tail=t)


def _feed(pipe: Any, data: bytes) -> None:
    try:
        pipe.write(data)
    except (BrokenPipeError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


# ----------------------------------------------------------------------------- probing


def _version(path: str) -> str:
    try:
        out = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "version":
            return parts[2]
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""


def _trial_rootfs(rootfs: Path) -> None:
    """A rootfs that borrows the host's /usr (and /bin, /lib* when not merged-usr)."""
    rootfs.mkdir(parents=True, exist_ok=True)
    for name in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            (rootfs / name).symlink_to(os.readlink(host))
        elif host.is_dir():
            (rootfs / name).mkdir(exist_ok=True)


def _trial_spec(rootfs: Path) -> dict[str, Any]:
    from xarch.executor.mounts import Mount
    from xarch.executor.spec import runtime_spec
    from xarch.oci.platform import host_platform

    binds = [
        Mount("bind", f"/{name}", f"/{name}", readonly=True)
        for name in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
        if (Path("/") / name).is_dir() and not (Path("/") / name).is_symlink()
    ]
    return runtime_spec(
        args=["/bin/true"],
        env=["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        cwd="/",
        user=(0, 0, ()),
        hostname="xarch-probe",
        rootfs=str(rootfs),
        readonly_rootfs=True,
        mounts=binds,
        network="none",
        platform=host_platform(),
    )


class RuntimeProber:
    """Probes runtimes once per object and remembers the verdicts.

    ``search_path`` replaces ``$PATH`` for finding runtimes (tests point it at fakes);
    ``trial=False`` skips the trial container (e.g. when not root) and decides from
    ``--version`` plus the cgroup layout alone.
    """

    def __init__(
        self,
        *,
        search_path: str | None = None,
        trial: bool | None = None,
        cgroup_root: Path = Path("/sys/fs/cgroup"),
        state_root: Path | None = None,
        work_dir: Path | None = None,
    ) -> None:
        self.search_path = search_path
        self.trial = (os.geteuid() == 0) if trial is None else trial
        self.cgroup_root = cgroup_root
        self.state_root = state_root
        self.work_dir = work_dir
        self._cache: dict[str, RuntimeCandidate] = {}
        self._lock = threading.Lock()

    def probe(self, name: str) -> RuntimeCandidate:
        with self._lock:
            if name not in self._cache:
                self._cache[name] = self._probe(name)
            return self._cache[name]

    def _probe(self, name: str) -> RuntimeCandidate:
        path = shutil.which(name, path=self.search_path)
        if path is None:
            return RuntimeCandidate(name, None, "", False, f"{name} not found in PATH")
        version = _version(path)
        if not version:
            return RuntimeCandidate(name, path, "", False, f"`{path} --version` failed")
        mode = cgroup_mode(self.cgroup_root)
        if not self.trial:
            if name == "crun" and mode == "hybrid":
                return RuntimeCandidate(
                    name,
                    path,
                    version,
                    False,
                    "cgroups are in hybrid v1/v2 mode, which crun does not support",
                )
            return RuntimeCandidate(
                name, path, version, True, f"found (not trial-run; cgroups {mode})"
            )
        info = RuntimeInfo(name, path, version)
        with tempfile.TemporaryDirectory(prefix="xarch-probe-", dir=self.work_dir) as tmp:
            bundle = Path(tmp)
            _trial_rootfs(bundle / "rootfs")
            try:
                run(
                    _trial_spec(bundle / "rootfs"),
                    bundle,
                    runtime=info,
                    timeout=60,
                    state_root=self.state_root,
                )
            except RuntimeFailure as e:
                detail = getattr(e, "output_tail", "") or e.message
                last = detail.strip().splitlines()[-1] if detail.strip() else e.message
                if "hybrid" in detail:
                    reason = f"cgroups are in hybrid v1/v2 mode, which {name} {version} does not support ({last})"
                else:
                    reason = f"trial container failed: {last}"
                return RuntimeCandidate(name, path, version, False, reason)
        return RuntimeCandidate(name, path, version, True, f"trial container ran (cgroups {mode})")

    def candidates(self, preferred: Sequence[str] = DEFAULT_PREFERENCE) -> list[RuntimeCandidate]:
        return [self.probe(n) for n in preferred]

    def detect(self, preferred: Sequence[str] = DEFAULT_PREFERENCE) -> RuntimeInfo:
        found = self.candidates(preferred)
        for c in found:
            if c.usable:
                return c.info()
        why = "; ".join(f"{c.name}: {c.reason}" for c in found) or "no runtime names given"
        raise RuntimeFailure(
            f"no working OCI runtime ({why})",
            hint="install runc (apt-get install runc) and run `xarch doctor`",
        )


def detect_runtime(
    preferred: Sequence[str] = DEFAULT_PREFERENCE, *, prober: RuntimeProber | None = None
) -> RuntimeInfo:
    """The first runtime in ``preferred`` that actually runs a container here."""
    return (prober or RuntimeProber()).detect(preferred)
