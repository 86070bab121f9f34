#!/usr/bin/env bash
# Builds the BPF object, the libbpf addon, the TypeScript and the dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s -C bpf
# The TypeScript bindings and the addon's layout asserts from lb.o's BTF (rewritten only when they change).
node scripts/gen-abi.mjs
if [ -f binding.gyp ]; then
  if [ ! -f build/Release/xdplb_native.node ] || [ -n "$(find native binding.gyp bpf/lb_abi.h -newer build/Release/xdplb_native.node 2>/dev/null)" ]; then
    bash native/build.sh >/dev/null
  fi
fi
npx --no-install tsc -p tsconfig.json
if [ -f web/vite.config.ts ] || [ -f web/vite.config.mjs ]; then
  (cd web && npx --no-install vite build --logLevel warn)
fi
