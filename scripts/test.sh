#!/usr/bin/env bash
# The whole test suite: set-up, build, type-check, then every test (unit, kernel, lab, browser).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
npx --no-install tsc --noEmit -p tsconfig.json
# Kernel and lab tests share network namespaces and pins: run test files one at a time.
node --test --test-concurrency=1 ${XDPLB_TEST_FILES:-dist/src dist/test}
