#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` (an OpenAI-compatible HTTP server) from the llama.cpp source
# that the llama-cpp-python sdist on PyPI vendors, and writes a tiny llama-architecture model with
# random weights (deploy/llama/tiny_model.py, `gguf` from PyPI) for the drafts tests
# (gateway/tests/drafts_llama.rs). The model's text is gibberish; the HTTP, JSON, streaming,
# timeout and "image input not supported" paths it exercises are real.
#
# Idempotent and cached: everything lands in $WAGU_CACHE_DIR/llama-server-<version>/ and is
# built once per machine (the cold build of the single target takes a while on 2 cores; see the
# README). Prints the two variables the test reads:
#   WAGU_TEST_LLAMA_SERVER=<path of llama-server>
#   WAGU_TEST_LLAMA_MODEL=<path of the tiny .gguf>
# With --env FILE it also writes them as `export` lines to FILE.
#
# Needs: python3 (venv, pip), cmake >= 3.14, a C++17 compiler. No network beyond PyPI.
set -euo pipefail

# Pinned: the sdist whose vendored llama.cpp we build, and the writer of the model (with numpy).
LLAMA_CPP_PYTHON_VERSION="0.3.36"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${WAGU_CACHE_DIR:-$HOME/.cache/wagu}"
HOME_DIR="$CACHE_DIR/llama-server-$LLAMA_CPP_PYTHON_VERSION"
JOBS="${WAGU_LLAMA_JOBS:-2}"
ENV_FILE=""
if [[ "${1:-}" == "--env" ]]; then ENV_FILE="$2"; fi

log() { printf '[llama] %s\n' "$*" >&2; }

mkdir -p "$HOME_DIR"
SERVER="$HOME_DIR/bin/llama-server"
MODEL="$HOME_DIR/tiny-llama-random.gguf"

SRC="$HOME_DIR/src"
# The llama.cpp source vendored in the sdist (the build and the model's vocabulary need it).
fetch_source() {
  [[ -f "$SRC/.complete" ]] && return 0
  log "downloading the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist (PyPI)"
  rm -rf "$SRC" "$HOME_DIR/sdist"
  mkdir -p "$HOME_DIR/sdist" "$SRC"
  python3 -m pip download --quiet --no-binary :all: --no-deps \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$HOME_DIR/sdist"
  tar xzf "$HOME_DIR/sdist/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" -C "$SRC" \
    --strip-components=3 "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
  rm -rf "$HOME_DIR/sdist"
  touch "$SRC/.complete"
}

if [[ ! -x "$SERVER" ]]; then
  fetch_source
  src="$SRC"
  log "building llama-server (cmake, -j$JOBS, no native CPU flags, no network features)"
  # GGML_NATIVE=OFF: the binary runs on any x86-64 the cache is copied to. No CURL/OpenSSL
  # (models come from a path) and no web UI (neither built nor downloaded).
  cmake -S "$src" -B "$HOME_DIR/build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DBUILD_SHARED_LIBS=OFF >"$HOME_DIR/cmake-configure.log" 2>&1 \
    || { tail -40 "$HOME_DIR/cmake-configure.log" >&2; exit 1; }
  cmake --build "$HOME_DIR/build" --target llama-server -j "$JOBS" >"$HOME_DIR/cmake-build.log" 2>&1 \
    || { tail -40 "$HOME_DIR/cmake-build.log" >&2; exit 1; }
  mkdir -p "$HOME_DIR/bin"
  cp "$HOME_DIR/build/bin/llama-server" "$SERVER.tmp"
  mv "$SERVER.tmp" "$SERVER"
  log "built $SERVER"
else
  log "llama-server present: $SERVER"
fi

if [[ ! -f "$MODEL" ]]; then
  venv="$HOME_DIR/venv"
  if [[ ! -x "$venv/bin/python" ]]; then
    log "creating the model writer's venv (gguf, numpy; pinned in deploy/llama/requirements.txt)"
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet -r "$SCRIPT_DIR/requirements.txt"
  fetch_source
  vocab="$SRC/models/ggml-vocab-llama-spm.gguf"
  [[ -f "$vocab" ]] || { log "missing $vocab in the sdist"; exit 1; }
  "$venv/bin/python" "$SCRIPT_DIR/tiny_model.py" --vocab "$vocab" --out "$MODEL.tmp"
  mv "$MODEL.tmp" "$MODEL"
  log "wrote $MODEL"
else
  log "model present: $MODEL"
fi

echo "WAGU_TEST_LLAMA_SERVER=$SERVER"
echo "WAGU_TEST_LLAMA_MODEL=$MODEL"
if [[ -n "$ENV_FILE" ]]; then
  printf 'export WAGU_TEST_LLAMA_SERVER=%q\nexport WAGU_TEST_LLAMA_MODEL=%q\n' "$SERVER" "$MODEL" >"$ENV_FILE"
fi
