"""llama.cpp's OpenAI-compatible server (llama-cpp-python) serving SmolLM2-135M-Instruct, as a real process.

``bench/real_server/build.sh`` builds it once into a cached virtual environment and writes a manifest naming
the server's Python and the model file; this module only reads that manifest. It never builds: a fresh build
takes 20-40 minutes on 2 cores, more than a test run may spend.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BUILD_COMMAND = "bash bench/real_server/build.sh"
CONTEXT_WINDOW = 2048  # small, so that prompts past the limit are cheap to make


def cache_dir() -> Path:
    return Path(os.environ.get("TIERROUTE_LLAMA_CACHE") or Path.home() / ".cache" / "tierroute")


@dataclass(frozen=True, slots=True)
class Build:
    python: Path
    model: Path
    version: str


def find_build() -> tuple[Build | None, str]:
    """The cached build, or None and why not (naming the command that makes it)."""
    manifest = cache_dir() / "llama-server.json"
    if not manifest.is_file():
        return None, f"llama.cpp server not built ({manifest} is missing): run `{BUILD_COMMAND}` once (20-40 min)"
    data = json.loads(manifest.read_text())
    build = Build(python=Path(data["python"]), model=Path(data["model"]), version=str(data["llama_cpp_python"]))
    for path in (build.python, build.model):
        if not path.exists():
            return None, f"llama.cpp server build is incomplete ({path} is missing): run `{BUILD_COMMAND}` again"
    return build, ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """One ``python -m llama_cpp.server`` on a loopback port; its output goes to ``log``."""

    def __init__(self, build: Build, log: Path, *, n_ctx: int = CONTEXT_WINDOW) -> None:
        self.build, self.log, self.n_ctx = build, log, n_ctx
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_seconds: float = 120.0) -> LlamaServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(self.build.python), "-u", "-m", "llama_cpp.server", "--model", str(self.build.model),
                 "--n_ctx", str(self.n_ctx), "--n_threads", "2", "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/v1/models", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"llama.cpp server did not start; its log:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)

    def post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        request = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as resp:
            return json.loads(resp.read())

    def count_tokens(self, text: str) -> int:
        """The server's own count of ``text`` (its tokenizer, special tokens parsed, no template)."""
        return int(self.post("/extras/tokenize/count", {"input": text})["count"])
