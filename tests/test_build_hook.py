"""hatch_build.py: compiles the optional kernels when it can, and says why (instead of failing) when it cannot."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

pytest.importorskip("hatchling")

import hatch_build  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCE = str(ROOT / hatch_build.SOURCE)


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler here")
def test_compiles_an_importable_module(tmp_path: Path) -> None:
    output = tmp_path / hatch_build._module_name()
    assert hatch_build._compile(SOURCE, str(output)) is None
    spec = importlib.util.spec_from_file_location("_kernels", output)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.hash_features) and callable(module.dense_features) and hasattr(module, "Scorer")


@pytest.mark.parametrize("cc,reason", [
    ("/bin/false", "C compiler failed"),
    ("/nonexistent/cc", "cannot run the C compiler"),
])
def test_a_missing_or_failing_compiler_is_a_reason_not_an_error(cc: str, reason: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", cc)
    monkeypatch.delenv("LDSHARED", raising=False)
    result = hatch_build._compile(SOURCE, str(tmp_path / "out.so"))
    assert result is not None and result.startswith(reason)
    assert not (tmp_path / "out.so").exists()


def test_compiler_flags_come_from_this_python_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "my-cc")
    monkeypatch.setenv("CFLAGS", "-DEXTRA_FLAG")
    monkeypatch.delenv("LDSHARED", raising=False)
    command = hatch_build._compiler_command("k.c", "k.so")
    assert command[0] == "my-cc" and "-DEXTRA_FLAG" in command and "-fPIC" in command
    assert "k.c" in command and command[command.index("-o") + 1] == "k.so"
