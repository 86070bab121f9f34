#!/usr/bin/env bash
# Builds build/Release/xdplb_native.node without network: node-gyp as bundled with npm (the project
# has no node-gyp of its own, so `npx --no-install node-gyp` fails) and the Node headers that the
# nodejs package installs under /usr/include/node (node-gyp would otherwise download them).
set -euo pipefail
cd "$(dirname "$0")/.."

nodedir="${npm_config_nodedir:-}"
if [ -z "$nodedir" ]; then
  for dir in "$(dirname "$(dirname "$(command -v node)")")" /usr /usr/local; do
    if [ -f "$dir/include/node/node_api.h" ]; then nodedir="$dir"; break; fi
  done
fi
if [ -z "$nodedir" ]; then
  echo "native/build.sh: no Node headers (include/node/node_api.h) found; install the nodejs package's headers" >&2
  exit 1
fi

if [ -x node_modules/.bin/node-gyp ]; then
  gyp=(node_modules/.bin/node-gyp)
else
  bundled="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
  if [ ! -f "$bundled" ]; then
    echo "native/build.sh: node-gyp not found (neither node_modules/.bin/node-gyp nor $bundled)" >&2
    exit 1
  fi
  gyp=(node "$bundled")
fi

"${gyp[@]}" rebuild --nodedir="$nodedir" "$@"
