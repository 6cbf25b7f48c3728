"""Hatchling build hook: compile the optional `_kernels` C extension when possible.

The extension only speeds things up (tierroute.policies.kernels falls back to numpy), so any
failure here downgrades to a warning and a pure-Python wheel instead of a failed install.
setuptools/distutils are deliberately not used: hatchling's isolated build env lacks them, and
one compiler call driven by the interpreter's own sysconfig is all a single .c file needs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from typing import Any

from hatchling.builders.config import BuilderConfig
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE_DIR = "tierroute/policies/kernels"
SOURCE = f"src/{PACKAGE_DIR}/_kernels.c"
SKIP_ENV = "TIERROUTE_NO_NATIVE"


def _module_name() -> str:
    return "_kernels" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")


def _compiler_command(source: str, output: str) -> list[str]:
    """Compile and link in one call, with the flags distutils would use for this interpreter.

    CC/LDSHARED/CFLAGS/LDFLAGS from the environment override sysconfig, as with setuptools, so
    users can pick a compiler (or disable it with CC=/bin/false).
    """
    cfg = sysconfig.get_config_var
    sys_cc: str = cfg("CC") or ""
    cc = os.environ.get("CC", sys_cc)
    if not cc:  # e.g. Windows/MSVC builds expose no CC; not worth supporting for one kernel file
        raise FileNotFoundError("this Python's sysconfig names no C compiler (CC)")
    ldshared: str = os.environ.get("LDSHARED") or cfg("LDSHARED") or f"{cc} -shared"
    # LDSHARED embeds sysconfig's CC ("gcc -shared ..."); swap in an overriding CC like distutils.
    if "LDSHARED" not in os.environ and sys_cc and ldshared.startswith(sys_cc):
        ldshared = cc + ldshared[len(sys_cc):]
    linker = shlex.split(ldshared)
    # Linux LDSHARED already says -shared; macOS says -bundle, which clang refuses to mix with it.
    if not {"-shared", "-bundle"} & set(linker):
        linker.append("-shared")
    cflags = " ".join([cfg("CFLAGS") or "", cfg("CCSHARED") or "", os.environ.get("CFLAGS", "")])
    return [
        *linker,
        *shlex.split(cflags),
        "-O3", "-fPIC", "-std=c11",
        f"-I{sysconfig.get_paths()['include']}",
        source,
        "-o", output,
        *shlex.split(os.environ.get("LDFLAGS", "")),
    ]


def _compile(source: str, output: str) -> str | None:
    """Build `output`; return None on success or a one-line reason on failure."""
    try:
        result = subprocess.run(
            _compiler_command(source, output), capture_output=True, text=True, timeout=600
        )
    except (OSError, subprocess.SubprocessError) as exc:  # compiler missing, not executable, hung
        return f"cannot run the C compiler: {exc}"
    if result.returncode != 0:
        # The last line ("fatal error: Python.h: No such file or directory") is usually the useful one.
        lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit status {result.returncode}"
        return f"C compiler failed: {detail}"
    return None


class KernelsBuildHook(BuildHookInterface[BuilderConfig]):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        filename = _module_name()
        source = os.path.join(self.root, SOURCE)
        # Hatchling's editable wheel is only a .pth putting src/ on sys.path (the tag stays
        # py3-none-any whatever we say), so the module has to be built next to the sources.
        editable = version == "editable"
        if editable:
            self.clean([version])  # a stale module must not outlive a skip or a failed rebuild

        reason: str | None
        if os.environ.get(SKIP_ENV, "") not in ("", "0"):
            reason = f"{SKIP_ENV} is set"
        elif not os.path.isfile(source):
            reason = f"{SOURCE} not found"
        elif editable:
            reason = _compile(source, self._inplace_path())
        else:
            # Standard wheels take the module from a scratch dir so the source tree stays clean.
            self._scratch_dir = tempfile.mkdtemp(prefix="tierroute-kernels-")
            output = os.path.join(self._scratch_dir, filename)
            reason = _compile(source, output)
            if reason is None:
                build_data["force_include"][output] = f"{PACKAGE_DIR}/{filename}"
                build_data["pure_python"] = False
                build_data["infer_tag"] = True  # cpXY-cpXY-<platform> instead of py3-none-any
        if reason is not None:
            print(
                f"WARNING: tierroute: native _kernels extension not built ({reason}); "
                "the numpy fallback will be used.",
                file=sys.stderr,
            )

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch: str | None = getattr(self, "_scratch_dir", None)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)

    def clean(self, versions: list[str]) -> None:
        # Also run by `hatch build --clean`: drop the in-place module an editable install left.
        path = self._inplace_path()
        if os.path.exists(path):
            os.remove(path)

    def _inplace_path(self) -> str:
        return os.path.join(self.root, "src", PACKAGE_DIR, _module_name())
