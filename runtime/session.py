"""Creating ONNX Runtime sessions with an honest account of the provider actually used.

onnxruntime silently falls back to the CPU (one log line) when the CUDA or cuDNN libraries fail
to load, so the providers a session really holds are compared with what was asked for."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution

from zoo.errors import ZooError

PROVIDER_CHOICES = ("auto", "cpu", "cuda", "tensorrt")
_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


@dataclass
class ProviderReport:
    requested: str
    used: str
    note: str = ""


def _installed(dist: str) -> bool:
    try:
        distribution(dist)
        return True
    except PackageNotFoundError:
        return False


def _gpu_present() -> bool:
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"))


@contextmanager
def _quiet_native_output():
    """onnxruntime prints library-loading failures from C++ and from preload_dlls(); the
    provider check below reports the outcome in one line instead."""
    sys.stdout.flush(), sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1), os.dup2(devnull, 2)
        yield
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def warn(message: str) -> None:
    print(f"zoo: warning: {message}", file=sys.stderr)


#: the most intra-op threads asked for (more than a machine's cores only slows onnxruntime down)
MAX_THREADS = 1024


def check_threads(threads: int | None) -> None:
    """``--threads`` / ``zoo.load(threads=)``: None (onnxruntime's default) or 1..MAX_THREADS."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise ZooError(f"threads {threads!r}: give a whole number from 1 to {MAX_THREADS} "
                       "(or leave it out for onnxruntime's default, one per physical core)")


def create_session(path: str, requested: str = "auto", options=None, threads: int | None = None,
                   spin: bool = True):
    """Return ``(session, ProviderReport)``; raise ZooError if ``requested`` cannot be honoured
    and was asked for explicitly. ``threads`` sets onnxruntime's intra-op thread count (the
    threads one graph call spreads over; None leaves onnxruntime's default, one per physical
    core). ``spin=False`` makes those threads sleep between graph calls instead of spin-waiting
    for the next one: the runtime (``Artifact`` sessions) does so, because it decodes the next
    batch, searches and samples on the same cores between calls, and a spinning pool takes
    them (measured on the 2-core machine: yolo-nano over photos x1.33 from this alone, char-rnn
    sampling x1.3; benchmarks/RESULTS.md). Timing a graph alone (``zoo bench``) keeps the
    default."""
    import onnxruntime as ort

    check_threads(threads)
    if threads is not None or not spin:
        options = options or ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if requested not in PROVIDER_CHOICES:
        raise ZooError(f"unknown provider {requested!r}; choose from {', '.join(PROVIDER_CHOICES)}")
    ort.set_default_logger_severity(4)  # our report replaces onnxruntime's fallback log lines
    available = ort.get_available_providers()
    note = ""
    if (_installed("onnxruntime") and (_installed("onnxruntime-gpu") or _installed("onnxruntime-directml"))
            and "CUDAExecutionProvider" not in available and "DmlExecutionProvider" not in available):
        note = ("both onnxruntime and a GPU build of it are installed; the CPU package shadows the GPU one. "
                "`pip uninstall onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu`")
    if requested == "auto":
        want = [p for p in (_NAMES["cuda"],) if p in available and _gpu_present()]
    elif requested == "cpu":
        want = []
    else:
        name = _NAMES[requested]
        if name not in available:
            raise ZooError(
                f"provider {requested!r} is not in this onnxruntime build (it has {', '.join(available)}); "
                "install onnxruntime-gpu" + (f" ({note})" if note else "")
            )
        want = [name]
    providers = want + ["CPUExecutionProvider"]
    try:
        if want:
            with _quiet_native_output():
                preload = getattr(ort, "preload_dlls", None)
                if preload is not None:
                    try:
                        preload()
                    except Exception:  # the providers check below reports what actually happened
                        pass
                session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        else:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:
        message = " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())[:500] \
            or type(exc).__name__  # onnxruntime's messages run over several lines: one here
        raise ZooError(f"{path}: onnxruntime cannot load this model ({message})") from exc
    got = session.get_providers()
    used = got[0] if got else "?"
    missing = [p for p in want if p not in got]
    if missing:
        why = (f"{', '.join(missing)} was requested but onnxruntime fell back to {used} "
               "(CUDA/cuDNN libraries missing or no usable GPU)")
        if requested != "auto":
            raise ZooError(why)
        warn(why)
    if note and requested in ("auto", "cuda", "tensorrt"):
        warn(note)
    return session, ProviderReport(requested, used, note)
