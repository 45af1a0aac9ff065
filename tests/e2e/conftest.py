"""End-to-end fixtures: the real coreserve binary, started on free ports against generated models."""
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import make_models  # noqa: E402  (the generator under test, imported from scripts/)

BINARY = Path(os.environ.get("CORESERVE_BIN", ROOT / "build" / "coreserve"))
LISTEN_RE = re.compile(r"(http|grpc|metrics) listening on (\S+):(\d+)$")
START_TIMEOUT_S = 30
# What AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer and ThreadSanitizer print when they find
# something (make test-asan / test-tsan run these tests against sanitized builds); never in a plain build's log.
SANITIZER_REPORT_RE = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error: |WARNING: ThreadSanitizer")


class RunningServer:
    """A coreserve process; stderr is collected on a thread so the pipe never fills."""

    def __init__(self, config_path, extra_args=(), env=None):
        self.lines = []
        self.ports = {}
        self._ready = threading.Event()
        self._eof = False  # stderr closed: the process has ended (or is ending)
        self._cv = threading.Condition()
        self.proc = subprocess.Popen(
            [str(BINARY), "serve", "--config", str(config_path), "--http-port", "0", "--grpc-port", "0",
             "--metrics-port", "0", *extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError("coreserve did not start:\n" + "".join(self.lines))
        if self._eof or self.proc.poll() is not None:
            self.proc.wait(timeout=10)
            raise RuntimeError("coreserve exited at start:\n" + "".join(self.lines))

    def _read(self):
        for line in self.proc.stderr:
            with self._cv:
                self.lines.append(line)
                self._cv.notify_all()
            m = LISTEN_RE.search(line.strip())
            if m:
                self.ports[m.group(1)] = int(m.group(3))
            if "server ready" in line or "server not ready" in line:
                self._ready.set()
        self._eof = True
        self._ready.set()  # the process ended: wake the starter

    @property
    def http(self):
        return f"127.0.0.1:{self.ports['http']}"

    @property
    def grpc(self):
        return f"127.0.0.1:{self.ports['grpc']}"

    @property
    def metrics(self):
        return f"127.0.0.1:{self.ports['metrics']}"

    def log(self):
        with self._cv:
            return "".join(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends `sig` and returns the exit code (the process must exit within `timeout` seconds)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        assert not SANITIZER_REPORT_RE.search(self.log()), "sanitizer report:\n" + self.log()
        return code


def write_config(path, repositories):
    lines = ["model_repository:"] + [f"  - {r}" for r in repositories] if repositories else ["model_repository: []"]
    path.write_text("\n".join(lines) + "\n")
    return path


def serve_copies(models_dir, tmp_path, models):
    """A server over a fresh repository: {name: (default model to copy, config.yaml text or None)}."""
    repo = tmp_path / "repo"
    for name, (source, config) in models.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.onnx").write_bytes((models_dir / source / "1" / "model.onnx").read_bytes())
        if config is not None:
            (repo / name / "config.yaml").write_text(config)
    return RunningServer(write_config(tmp_path / "server.yaml", [repo]))


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    make_models.main(["--out", str(out)])
    return out


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    config = write_config(tmp_path_factory.mktemp("config") / "server.yaml", [models_dir])
    s = RunningServer(config)
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture(scope="module")
def broken_server(models_dir, tmp_path_factory):
    """A server whose second repository holds a model that is not ONNX: the server is live but not ready."""
    bad = tmp_path_factory.mktemp("bad-repo")
    (bad / "garbage" / "1").mkdir(parents=True)
    (bad / "garbage" / "1" / "model.onnx").write_bytes(b"\x00 not a model \xff")
    config = write_config(tmp_path_factory.mktemp("config") / "server.yaml", [models_dir, bad])
    s = RunningServer(config)
    yield s
    assert s.stop() == 0, s.log()
