"""``model.isolation: subprocess``: the model runs in a child process that is killed when a call is late.

The default per-call timeout (a worker thread, see :class:`~freqrex_audit.models.classifier.QueryEngine`)
cannot stop a call stuck in C code that holds the GIL: the waiting thread never runs again. Here the
parent only waits on a pipe with ``select`` — no Python in the child can block it — and on
``timeout_s`` kills the child (SIGKILL) and raises :class:`ClassifierTimeout`. Use it for untrusted or
flaky models; it costs one process start and one copy of each batch.

Protocol: each message is an 8-byte big-endian length then an ``.npz`` (no pickle either way: the child
runs the model's code, the parent never unpickles what it sends) holding a JSON header and arrays.
The child writes messages to a private copy of its stdout; the model's own prints go to stderr.
"""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import time
import weakref
from typing import Any, BinaryIO

import numpy as np
import torch

from ..runtime import deadline
from ..runtime.imports import adopt_from_environment, child_env
from ..models.classifier import (Classifier, ClassifierError, ClassifierTimeout, describe_exception, host_scores,
                                 model_raised)

__all__ = ["SubprocessClassifier"]

LOAD_TIMEOUT_S = 300.0


def _encode(header: dict, arrays: dict[str, np.ndarray] | None = None) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, __json__=np.frombuffer(json.dumps(header).encode(), np.uint8), **(arrays or {}))
    payload = buffer.getvalue()
    return len(payload).to_bytes(8, "big") + payload


def _decode(payload: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(arrays.pop("__json__").tobytes().decode()), arrays


def _read_exact(stream: BinaryIO, n: int, deadline: float | None) -> bytes | None:
    """``n`` bytes from ``stream``; None at the deadline; EOFError when the other side is gone."""
    chunks, left, fd = [], n, stream.fileno()
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                return None
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(stream: BinaryIO, deadline: float | None) -> tuple[dict, dict[str, np.ndarray]] | None:
    head = _read_exact(stream, 8, deadline)
    if head is None:
        return None
    body = _read_exact(stream, int.from_bytes(head, "big"), deadline)
    return None if body is None else _decode(body)


class SubprocessClassifier(Classifier):
    """A classifier whose ``predict`` runs in a child process, killed on ``timeout_s`` (see module docstring)."""

    kills_on_timeout = True

    def __init__(self, spec: dict[str, Any], timeout_s: float | None = None):
        self.timeout_s = timeout_s
        self.device = torch.device("cpu")  # batches travel through a pipe; the child uses spec["device"]
        self.process = subprocess.Popen([sys.executable, "-m", "freqrex_audit.adapters.sandbox"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=child_env({**os.environ, "PYTHONUNBUFFERED": "1"}))
        weakref.finalize(self, _kill, self.process)  # at garbage collection or interpreter exit
        reply = self._load(spec, max(LOAD_TIMEOUT_S, timeout_s or 0))
        header = reply[0]
        self.name, self.labels = str(header["name"]), [str(x) for x in header["labels"]]
        self.sample_rate, self.fingerprint = int(header["sample_rate"]), str(header["fingerprint"])
        self.warnings = list(header.get("warnings", []))
        window = header.get("input_window")  # AST/Whisper-style models are cropped to it in the parent too
        self.input_window = int(window) if window else None
        self.model_outputs = str(header.get("outputs", "probabilities"))  # what the child's adapter converted
        self.origin = header.get("origin")  # where the user's code is: errors point there
        self.fingerprint_problem = header.get("fingerprint_problem")

    def _load(self, spec: dict, timeout_s: float) -> tuple[dict, dict[str, np.ndarray]]:
        """The child's load reply; the session deadline, when it comes first, kills a load still running."""
        left = deadline.remaining()
        if left is None or left >= timeout_s:
            return self._call({"op": "load", "spec": spec}, None, timeout_s, "loading")
        try:
            return self._call({"op": "load", "spec": spec}, None, max(left, 0.001), "loading")
        except ClassifierTimeout:
            raise deadline.reached("while loading the model (the model process was killed)") from None

    def to(self, device: str | torch.device) -> "SubprocessClassifier":
        return self  # the child keeps the device the spec chose

    def predict(self, waveforms: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(waveforms).detach().to("cpu", torch.float32).numpy()
        _, arrays = self._call({"op": "predict"}, {"x": x}, self.timeout_s,
                               f"a call with {x.shape[0]} queries")
        return torch.from_numpy(arrays["probs"])

    def _call(self, header: dict, arrays: dict[str, np.ndarray] | None, timeout_s: float | None,
              what: str) -> tuple[dict, dict[str, np.ndarray]]:
        name = getattr(self, "name", "model process")
        if self.process.poll() is not None:
            raise ClassifierError(f"{name}: the model process (isolation: subprocess) is not running "
                                  f"(exit code {self.process.returncode})")
        try:
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write(_encode(header, arrays))
            self.process.stdin.flush()
            reply = _receive(self.process.stdout, None if timeout_s is None else time.monotonic() + timeout_s)
        except (EOFError, BrokenPipeError, OSError):
            self.close()
            raise ClassifierError(f"{name}: the model process (isolation: subprocess) died during {what} "
                                  f"(exit code {self.process.returncode})") from None
        if reply is None:
            self.close()
            raise ClassifierTimeout(f"{name}: {what} did not return within the {timeout_s:g} s query timeout "
                                    f"(model.timeout_s); the model process was killed and the model is treated "
                                    f"as hung")
        if "error" in reply[0]:
            raise ClassifierError(reply[0]["error"] if reply[0].get("named") else f"{name}: {reply[0]['error']}")
        return reply

    def close(self) -> None:
        """Kill the child (idempotent)."""
        _kill(self.process)


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def handshake(clf: Classifier) -> dict:
    """Every Classifier attribute the parent reads, as plain JSON: identity, labels, rate, the input window
    (the audit crops clips to it), what the adapter converted the raw outputs from, and load warnings."""
    window = getattr(clf, "input_window", None)
    return {"name": clf.name, "labels": list(clf.labels), "sample_rate": int(clf.sample_rate),
            "fingerprint": clf.fingerprint, "warnings": list(getattr(clf, "warnings", None) or []),
            "input_window": int(window) if window else None, "origin": getattr(clf, "origin", None),
            "fingerprint_problem": getattr(clf, "fingerprint_problem", None),
            "outputs": str(getattr(clf, "raw_outputs", None) or getattr(clf, "outputs", "probabilities"))}


def _serve() -> None:
    """The child: load the model from the first message, then answer predict messages until stdin closes."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the model's prints must not corrupt the protocol
    stdin = sys.stdin.buffer
    adopt_from_environment()  # the parent's import folders: a project's model module imports here as there
    from .registry import load_in_process

    clf = None
    while True:
        try:
            message = _receive(stdin, None)
        except EOFError:
            return
        assert message is not None
        header, arrays = message
        try:
            if header["op"] == "load":
                clf = load_in_process(header["spec"])
                reply = _encode(handshake(clf))
            else:
                assert clf is not None
                with torch.inference_mode():
                    probs = clf.predict(torch.from_numpy(arrays["x"]).to(clf.device))
                reply = _encode({}, {"probs": host_scores(probs, clf.name)})  # complex / meta: refused here
        except ClassifierError as exc:  # already names the model
            reply = _encode({"error": str(exc), "named": True})
        except (Exception, SystemExit, KeyboardInterrupt) as exc:  # noqa: BLE001 - one bad call, not the end
            if header["op"] == "load" or clf is None:  # the parent names the model
                reply = _encode({"error": describe_exception(exc)})
            else:  # the same words as in process: the model, the exception, its line
                reply = _encode({"error": str(model_raised(clf.name, exc, getattr(clf, "origin", None))),
                                 "named": True})
        out.write(reply)
        out.flush()


if __name__ == "__main__":
    _serve()
