#!/usr/bin/env bash
# Create .venv and install emzoo with everything its tests need. Idempotent; safe to rerun.
# torch/torchvision are pinned to the releases this machine's pip cap allows (CPU is enough).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/pip install -q --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import emzoo, timm; print('emzoo', emzoo.__version__, 'ready:', len(timm.list_models('emzoo_*')), 'architectures')"
