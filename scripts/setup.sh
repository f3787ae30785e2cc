#!/usr/bin/env bash
# Create .venv and install emzoo with everything its tests need. Idempotent; safe to rerun.
#   bash scripts/setup.sh                 # the package, its CLI and test dependencies (napari's Qt libraries when root)
#   bash scripts/setup.sh --with-browser  # also Debian's chromium, for the Space's browser test
# torch/torchvision are pinned to the releases this machine's pip cap allows (CPU is enough).
set -euo pipefail
cd "$(dirname "$0")/.."
quiet_pip() { .venv/bin/pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
if [ "${1:-}" = "--with-browser" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium is missing and this is not root; the browser test will be skipped" >&2
  fi
fi
# the napari plugin's tests run Qt on a virtual X display: Xvfb and the libraries Qt's xcb plugin loads
QT_DEBS="xvfb xauth libgl1 libegl1 libfontconfig1 libdbus-1-3 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 \
libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xkb1 libxcb-shape0 libxcb-cursor0"
if ! command -v Xvfb >/dev/null 2>&1 || ! dpkg -s libxcb-icccm4 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && apt-get install -y -qq $QT_DEBS >/dev/null
  else
    echo "setup: Xvfb/Qt libraries are missing and this is not root; the napari tests will be skipped" >&2
  fi
fi
python3 -m venv .venv
quiet_pip --upgrade pip
export PIP_RESUME_RETRIES=20  # PyPI downloads here are sometimes cut off mid-wheel; the new pip resumes them
quiet_pip "torch==2.14.1" "torchvision==0.29.1"
for attempt in 1 2 3; do  # and a whole install that still failed is tried again
  quiet_pip -e ".[test]"
  .venv/bin/python -c "import emzoo, timm" 2>/dev/null && break
  echo "setup: the install did not complete (attempt $attempt); retrying" >&2
done
.venv/bin/python -c "import emzoo, timm; print('emzoo', emzoo.__version__, 'ready:', len(timm.list_models('emzoo_*')), 'architectures')"
