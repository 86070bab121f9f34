#!/usr/bin/env bash
# Prints the path of a Node.js binary of the given major version (default 24), fetched once from
# the npm registry's node-linux-<arch> package (no other download) into /var/cache/xdplb/node.
# Used by scripts/test.sh to run the tests on a second Node version; idempotent.
set -euo pipefail
major=${1:-24}
[[ $major =~ ^[0-9]+$ ]] || { echo "node.sh: major version must be a number, got '$major'" >&2; exit 1; }
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "node.sh: no node-linux package for $(uname -m)" >&2; exit 1 ;;
esac
cache=${XDPLB_NODE_CACHE:-/var/cache/xdplb/node}
dir="$cache/$major-$arch"
if [[ ! -x $dir/bin/node ]]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  tarball=$(cd "$tmp" && npm pack "node-linux-$arch@$major" --silent --pack-destination "$tmp" | tail -n1)
  tar -xzf "$tmp/$tarball" -C "$tmp"
  "$tmp/package/bin/node" --version | grep -q "^v$major\." || { echo "node.sh: $tarball is not Node $major" >&2; exit 1; }
  rm -rf "$dir"
  mv "$tmp/package" "$dir"
fi
echo "$dir/bin/node"
