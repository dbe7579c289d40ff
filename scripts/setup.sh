#!/usr/bin/env bash
# Install tfcourse (editable) into the active Python environment.
#   bash scripts/setup.sh           the package and its command
#   bash scripts/setup.sh dev       plus what the tests need (EXTRAS may list several: "dev,book")
# PyTorch is installed only when missing, pinned to the release the course is tested with;
# any torch >= 2.5 that is already installed is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python -m pip install --quiet --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
    python -m pip install --quiet torch==2.13.0
fi
python -m pip install --quiet -e ".${extras:+[$extras]}"
python -c "import torch, tfcourse; print(f'tfcourse ready (torch {torch.__version__})')"
