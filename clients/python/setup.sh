#!/usr/bin/env bash
# Creates clients/python/.venv (if missing) and installs twin-client, editable, with its
# test and images extras; installing generates the gRPC stubs from proto/ (setup.py). Quick
# when nothing changed: pip runs only when the package files or a .proto are newer than the
# stamp left by the last successful install.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
stamp="$venv/.twin-client-installed"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
    rm -f "$stamp"
fi
# Reinstall when the package's metadata or the API (the stubs are generated from proto/
# at install time) changed since the last install.
fresh=1
for f in "$here/pyproject.toml" "$here/setup.py" "$here/generate.py" "$here"/../../proto/twin/v1/*.proto; do
    if [ ! -f "$stamp" ] || [ "$f" -nt "$stamp" ]; then fresh=0; fi
done
if [ "$fresh" = 1 ]; then
    exit 0
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e "$here[test,images]"
touch "$stamp"
