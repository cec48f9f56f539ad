#!/usr/bin/env bash
# Run the whole test suite in the Hygie virtual environment (made by installer/install.sh).
#   bash tests/run.sh [pytest args]
# Installs the package editable with the 'train' (torch, CPU), 'batch' (Ray) and 'dev' extras first (idempotent).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HYGIE_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/hygie-avatar/venv}"
if [ ! -x "$VENV/bin/python" ]; then
  bash "$REPO/installer/install.sh" --yes --no-v4l2 --venv "$VENV"
fi
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -e "$REPO[train,batch,dev,panel]"
cd "$REPO"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
