#!/usr/bin/env bash
# Build the course book into _build/html, running every code cell of every page.
# A page whose code is unchanged reuses its outputs from the execution cache
# (_build/.jupyter_cache); every page is rendered again on each build, so a warning left by
# an earlier failed build is never hidden. Any warning fails the build; nothing is
# downloaded (maths and search are bundled). Extra arguments go to `jupyter-book build`.
# Needs the book extra: bash scripts/setup.sh book
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import jupyter_book" 2>/dev/null; then
    echo "jupyter-book is not installed: run 'bash scripts/setup.sh book' first" >&2
    exit 1
fi
rm -f _build/book.stamp
jupyter-book build . --all -W -n --keep-going "$@"
touch _build/book.stamp  # a clean build: tests/book/test_book.py reuses it while no source is newer
echo "The book is in $(pwd)/_build/html: open _build/html/index.html in a browser."
