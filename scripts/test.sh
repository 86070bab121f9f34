#!/usr/bin/env bash
# The whole test suite: set-up, build, type-check, then every test (unit, kernel, lab, browser).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
npx --no-install tsc --noEmit -p tsconfig.json
if [ -n "${XDPLB_TEST_FILES:-}" ]; then
  files=($XDPLB_TEST_FILES)
else
  # Only *.test.js: node's default patterns would also run every helper file under a test/ dir.
  mapfile -t files < <(find dist/src dist/test -name '*.test.js' | sort)
fi
# Kernel and lab tests share network namespaces and pins: run test files one at a time.
node --test --test-concurrency=1 "${files[@]}"
