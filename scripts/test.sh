#!/usr/bin/env bash
# Set-up command 2: create or reuse .venv, install test dependencies, run the test suite (CPU only).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/install.sh" --test
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest -q tests "$@"
