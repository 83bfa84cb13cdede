#!/usr/bin/env bash
# Screenshot of a study report (OUT/report.html) in a real headless browser (Debian's chromium).
#
#   scripts/screenshot_report.sh [OUT] [PNG]
#
# OUT defaults to /tmp/pancakes_report_demo; when it holds no report.html yet, the bundled sample
# collection is segmented into it first (bundled model, CPU, M=3, K=8). PNG defaults to
# Screenshots/report.png, the picture the README shows.
# Needs: apt-get install -y chromium
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-/tmp/pancakes_report_demo}"
PNG="${2:-Screenshots/report.png}"
if [ ! -f "$OUT/report.html" ]; then
    PYTHONPATH=PancakesSegment python3 -m pancakes.cli segment --sample -o "$OUT" -M 3 -K 8 --device cpu -q
fi
BROWSER="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$BROWSER" ]; then
    echo "screenshot_report.sh: chromium not found (apt-get install -y chromium)" >&2
    exit 2
fi
mkdir -p "$(dirname "$PNG")"
# --no-sandbox: containers run as root, where Chromium's sandbox refuses to start.
# The window is tall so that the gallery and the first plots are in the picture.
"$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,2200 \
    --screenshot="$(realpath -m "$PNG")" "file://$(realpath "$OUT/report.html")" 2>/dev/null
echo "$PNG"
