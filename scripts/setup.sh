#!/usr/bin/env bash
# One-command, idempotent set-up of the SeqWM workspace on a pip-only Debian machine.
#
#   1. Debian packages the Python wheels need (cmake, g++, cyclonedds-dev), installed only if missing.
#   2. .venv/ with every Python dependency from requirements.txt (skipped when the file's hash is
#      unchanged since the last successful install).
#   3. The two paths the ROS wheels' CMake configs name (they were built under /opt/python/cp311-cp311).
#   4. colcon build of src/ into build/ + install/ (skipped when no package manifest, msg or
#      setup file changed; Python sources are symlink-installed, so editing them needs no rebuild).
#
# A second run with nothing changed finishes in a second or two.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

log() { printf '[setup] %s\n' "$*"; }

# ---- 1. Debian packages ------------------------------------------------------------------
need_deb=()
for pkg in cmake g++ cyclonedds-dev python3-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_deb+=("$pkg")
done
if [ ${#need_deb[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_deb[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends "${need_deb[@]}" >/dev/null \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends "${need_deb[@]}" >/dev/null; }
fi

# ---- 2. Python virtual environment -------------------------------------------------------
[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
# cyclonedds 0.10.2 builds its binding from source; its setup looks for lib/, include/, bin/
# under CYCLONEDDS_HOME, which Debian spreads over multiarch paths, so point at them with links.
CYC_HOME="$VENV/cyclonedds-home"
MULTIARCH="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)"
mkdir -p "$CYC_HOME"
ln -sfn "/usr/lib/$MULTIARCH" "$CYC_HOME/lib"
ln -sfn /usr/include "$CYC_HOME/include"
ln -sfn /usr/bin "$CYC_HOME/bin"

req_hash="$(sha256sum requirements.txt | cut -d' ' -f1)"
stamp="$VENV/.requirements.sha256"
if [ "$(cat "$stamp" 2>/dev/null)" != "$req_hash" ]; then
  log "installing Python requirements (first time: ~1-2 min)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  CYCLONEDDS_HOME="$CYC_HOME" "$VENV/bin/python" -m pip install -q -r requirements.txt
  echo "$req_hash" > "$stamp"
fi

# ---- 3. paths named by the ROS wheels' CMake configs --------------------------------------
PYINC="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NPINC="$("$VENV/bin/python" -c 'import numpy, os; print(os.path.join(os.path.dirname(numpy.__file__), "_core", "include"))')"
OPTPY=/opt/python/cp311-cp311
if [ "$(readlink "$OPTPY/include/python3.11" 2>/dev/null)" != "$PYINC" ] \
   || [ "$(readlink "$OPTPY/lib/python3.11/site-packages/numpy/_core/include" 2>/dev/null)" != "$NPINC" ]; then
  log "linking $OPTPY include paths for the ROS wheels' CMake configs"
  $SUDO mkdir -p "$OPTPY/include" "$OPTPY/lib/python3.11/site-packages/numpy/_core"
  $SUDO ln -sfn "$PYINC" "$OPTPY/include/python3.11"
  $SUDO ln -sfn "$NPINC" "$OPTPY/lib/python3.11/site-packages/numpy/_core/include"
fi

# ---- 4. colcon build ------------------------------------------------------------------------
# Hash everything that changes what colcon installs. Python sources are not in it: packages are
# symlink-installed (build/<pkg>/<pkg> -> src/<pkg>/<pkg>), so edits and new modules need no rebuild.
# The shipped models are installed into share/seqwm_agent/models/: a new or retrained model
# (its manifest) rebuilds too.
src_hash="$(find src models -type f \( -name package.xml -o -name setup.py -o -name setup.cfg \
               -o -name CMakeLists.txt -o -name '*.msg' -o -path '*/resource/*' \
               -o -path '*/launch/*' -o -path '*/config/*' -o -path 'models/*/manifest.yaml' \) -print0 | sort -z | xargs -0 sha256sum \
             | sha256sum | cut -d' ' -f1)"
bstamp="$ROOT/build/.colcon.sha256"
if [ "$(cat "$bstamp" 2>/dev/null)" != "$src_hash" ] || [ ! -d install ]; then
  log "colcon build (src/ -> install/)"
  mkdir -p build
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" \
    colcon --log-base build/log build --merge-install --symlink-install \
      --build-base build --install-base install \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" \
      > build/colcon.log 2>&1 || { tail -40 build/colcon.log; log "colcon build failed (full log: build/colcon.log)"; exit 1; }
  mkdir -p build && echo "$src_hash" > "$bstamp"
fi
log "ready. Use it with: source scripts/env.sh"
