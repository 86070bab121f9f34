#!/usr/bin/env bash
# The whole test suite: set-up, build, type-check, then every test (unit, kernel, lab, browser) on
# the machine's Node, then the unit and kernel tests again on Node 24 (the newest LTS we support).
# Needs root; a user with sudo is re-run under sudo (scripts/lib/as-root.sh).
#
# Environment (all optional):
#   XDPLB_TEST_FILES="dist/x.test.js ..."   run only these files (and skip the Node 24 pass)
#   XDPLB_NODE24=0                          skip the Node 24 pass
set -euo pipefail
source "$(dirname "$0")/lib/as-root.sh"
as_root "$(realpath "$0")" "$@"
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
npx --no-install tsc --noEmit -p tsconfig.json

logs=$(mktemp -d /tmp/xdplb-test.XXXXXX)
trap 'rm -rf "$logs"' EXIT
status=0
# run NAME NODE FILES...: one node --test pass, its output shown and kept for the totals.
run() {
  local name=$1 node=$2
  shift 2
  echo "== $name: $("$node" --version), ${#} test files"
  # Kernel and lab tests share network namespaces and pins: run test files one at a time.
  # No single test may take more than 10 minutes, and a pass that hangs (a failed test that left
  # a socket or timer open keeps its file alive) fails after 40 minutes instead of eating CI's
  # time. (--test-force-exit is not used: it ended a file whose suites were still registering
  # subtests, silently, without a failure.)
  timeout --kill-after=30 2400 "$node" --test --test-concurrency=1 --test-timeout=600000 --test-reporter=tap "$@" 2>&1 | tee "$logs/$name.tap" || status=1
}

if [ -n "${XDPLB_TEST_FILES:-}" ]; then
  files=($XDPLB_TEST_FILES)
  run main node "${files[@]}"
else
  # Only *.test.js: node's default patterns would also run every helper file under a test/ dir.
  mapfile -t files < <(find dist/src dist/test -name '*.test.js' | sort)
  run main node "${files[@]}"
  if [[ ${XDPLB_NODE24:-1} != 0 ]]; then
    # Unit tests (dist/src) and the kernel tests that drive the program and daemon directly.
    mapfile -t node24files < <(find dist/src -name '*.test.js' | sort; printf '%s\n' dist/test/datapath.test.js dist/test/fuzz.test.js dist/test/veth.test.js)
    run node24 "$(bash scripts/node.sh 24)" "${node24files[@]}"
  fi
fi

# One closing line over every pass (the TAP summaries' "# pass N" lines).
total() { cat "$logs"/*.tap | sed -n "s/^# $1 \([0-9]*\)$/\1/p" | awk '{s += $1} END {print s + 0}'; }
passed=$(total pass) failed=$(total fail) skipped=$(total skipped) cancelled=$(total cancelled)
[[ $failed -eq 0 && $cancelled -eq 0 ]] || status=1
# The failures again at the very end, where a reader of only the log's tail sees them: each failing
# test's "not ok" line, the first lines of its error and location, and its diagnostics, bounded.
if [[ $((failed + cancelled)) -gt 0 ]]; then
  echo "== failures"
  for tap in "$logs"/*.tap; do
    awk -v pass="$(basename "$tap" .tap)" '
      function indent(line) { match(line, /^ */); return RLENGTH }
      /^ *not ok / { n = 0; nd = 0; post = 0; at = indent($0); shown++; keep = shown <= 20; if (keep) print pass ": " $0; next }
      # after the failure block, the test'"'"'s own diagnostics ("# ..." lines at its indentation:
      # t.diagnostic), up to 12; not after a file'"'"'s top-level result (what follows is the next file'"'"'s)
      keep && /^ *\.\.\.$/ { keep = 0; post = shown <= 20 && at > 0; next }
      keep && n < 16 { print pass ":   " $0; n++; next }
      post && /^ *# / && !/^ *# Subtest:/ && indent($0) == at && nd < 12 { print pass ":   " $0; nd++; next }
      post { post = 0 }
    ' "$tap"
  done
fi
echo "tests: $passed passed, $((failed + cancelled)) failed, $skipped skipped"
exit $status
