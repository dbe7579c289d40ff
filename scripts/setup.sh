#!/usr/bin/env bash
# Install tfcourse (editable) into the active Python environment.
#   bash scripts/setup.sh           the package and its command
#   bash scripts/setup.sh dev       plus what the tests need (EXTRAS may list several: "grading,book")
#   bash scripts/setup.sh grading   what an instructor needs to grade a class (nbgrader)
#   bash scripts/setup.sh hub       a JupyterHub for a class (docs/jupyterhub.md), with its proxy from npm (dev too)
# With "dev", Debian's chromium is installed for the book's browser test when it is missing
# and this runs as root with apt-get; elsewhere that test is skipped and says why.
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
if [[ ",$extras," =~ ,(grading|hub|dev), ]]; then
    # formgrader's pages load MathJax from the Jupyter server, not a CDN (autograder/grading/formgrader_maths.py):
    # the extension is enabled for this environment's Jupyter servers
    config_d="$(python -c 'import sys; print(sys.prefix)')/etc/jupyter/jupyter_server_config.d"
    mkdir -p "$config_d"
    echo '{"ServerApp": {"jpserver_extensions": {"autograder.grading.formgrader_maths": true}}}' \
        > "$config_d/tfcourse-formgrader-maths.json"
fi
if [[ ",$extras," == *,dev,* ]] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
            || echo "warning: apt-get could not install chromium; the browser test will be skipped" >&2
    else
        echo "note: the book's browser test needs Chromium (Debian: sudo apt-get install chromium)" >&2
    fi
fi
if [[ ",$extras," == *,hub,* || ",$extras," == *,dev,* ]] && ! command -v configurable-http-proxy >/dev/null; then
    if command -v npm >/dev/null; then
        npm install --global configurable-http-proxy
    else
        echo "note: JupyterHub needs configurable-http-proxy: install Node.js and npm, then" \
             "npm install --global configurable-http-proxy" >&2
    fi
fi
python -c "import torch, tfcourse; print(f'tfcourse ready (torch {torch.__version__})')"
