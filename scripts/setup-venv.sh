#!/usr/bin/env bash
# Creates a virtual environment (if missing) and installs a pinned requirements file into it. Idempotent: a
# stamp holding the requirements' checksum skips pip entirely when nothing changed.
#
# usage: setup-venv.sh [VENV_DIR REQUIREMENTS [--no-deps]]   (default: .venv scripts/requirements.txt, the test
#        tools; the benchmarks and fixture exports use .venv-export scripts/requirements-export.txt, ~3 GB with
#        torch; the deploy checks .venv-deploy scripts/requirements-deploy.txt --no-deps, a file that pins every
#        package itself)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/${1:-.venv}"
req="$root/${2:-scripts/requirements.txt}"
no_deps=()
[ "${3:-}" = "--no-deps" ] && no_deps=(--no-deps)
stamp="$venv/.requirements.sha256"

if [ ! -x "$venv/bin/python" ]; then
  echo "setup-venv: creating $venv"
  python3 -m venv "$venv"
fi

# The stamp covers the file and the ones it includes with -r, so a change to either reinstalls.
included=$(sed -n 's/^-r[[:space:]]*//p' "$req" | while read -r f; do echo "$(dirname "$req")/$f"; done)
# shellcheck disable=SC2086
sum=$(cat "$req" $included | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
  exit 0
fi

echo "setup-venv: installing pinned Python tools"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${no_deps[@]}" -r "$req"
echo "$sum" > "$stamp"
