#!/usr/bin/env bash
# Installs Label Studio from its PyPI package into its OWN virtualenv (it pins many packages that
# must not meet activestream's). A no-op when the venv already holds the pinned version.
# Prints the venv's path on its last line. Used by .ci/run and tests/label_studio_fixtures.py.
#   LABEL_STUDIO_VERSION   version to install (default below)
#   LABEL_STUDIO_VENV      where (default ~/.cache/activestream/label-studio-venv)
#   LABEL_STUDIO_PYTHON    interpreter to create the venv with (default python3.11, else python3)
set -euo pipefail
VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
VENV="${LABEL_STUDIO_VENV:-$HOME/.cache/activestream/label-studio-venv}"
PY="${LABEL_STUDIO_PYTHON:-$(command -v python3.11 || command -v python3)}"
STAMP="$VENV/.activestream-label-studio-$VERSION"

if [ -f "$STAMP" ] && [ -x "$VENV/bin/label-studio" ]; then
  echo "label-studio $VERSION already in $VENV" >&2
  echo "$VENV"
  exit 0
fi
start=$(date +%s)
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip >&2
"$VENV/bin/pip" install -q "label-studio==$VERSION" >&2
touch "$STAMP"
echo "label-studio $VERSION installed in $VENV in $(( $(date +%s) - start ))s" >&2
echo "$VENV"
