#!/usr/bin/env bash
# Browser end-to-end test: headless Chromium plays a game page from another
# origin against a real `taisen serve` (see e2e/browser/run.mjs).
#
#   scripts/browser-test.sh              # builds bin/taisen, runs the test
#   TAISEN_BIN=/path/taisen scripts/browser-test.sh
#
# Needs node (>= 20), npm, go (unless TAISEN_BIN is set) and Debian's
# chromium at /usr/bin/chromium. Without chromium it installs it when CI=true
# and otherwise skips (exit 0).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

chromium_bin=/usr/bin/chromium
if [[ ! -x "$chromium_bin" ]]; then
	if [[ "${CI:-}" == "true" ]]; then
		echo "browser-test: installing chromium (apt-get)" >&2
		sudo=""
		if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
		$sudo apt-get update -qq >/dev/null
		$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
	else
		echo "browser-test: skipped: $chromium_bin is not installed. To run it:" >&2
		echo "  sudo apt-get update" >&2
		echo "  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver" >&2
		exit 0
	fi
fi

for tool in node npm; do
	command -v "$tool" >/dev/null || { echo "browser-test: $tool is required" >&2; exit 1; }
done

e2e=e2e/browser
if [[ ! -d "$e2e/node_modules" || "$e2e/package-lock.json" -nt "$e2e/node_modules" ]]; then
	(cd "$e2e" && npm ci --silent --no-fund --no-audit)
	touch "$e2e/node_modules"
fi

if [[ -z "${TAISEN_BIN:-}" ]]; then
	go build -o bin/taisen ./cmd/taisen
	export TAISEN_BIN="$PWD/bin/taisen"
fi

exec node "$e2e/run.mjs"
