#!/usr/bin/env bash
# `npm run demo`: the lab (client, lb, 3 backends in network namespaces), the xdplb daemon inside
# the lb namespace, bounded background traffic, and the dashboard at http://127.0.0.1:8720/.
# Stays in the foreground until Ctrl-C, then stops exactly the processes it started (by pid)
# and takes the lab down.
#
# Environment (all optional):
#   XDPLB_DEMO_SKIP_BUILD=1     skip scripts/setup.sh and scripts/build.sh (already done)
#   XDPLB_DEMO_PORT=8720        host port of the dashboard
#   XDPLB_DEMO_MAX_SECONDS=N    stop by itself after N seconds (0 = wait for Ctrl-C)
#   XDPLB_DEMO_HTTP_RPS=20 XDPLB_DEMO_UDP_RPS=10   background traffic rates
#   XDPLB_DEMO_HTTP6_RPS=10                         background IPv6 HTTP rate (web6)
#   XDPLB_DEMO_PREFIX=xlb       lab prefix (tests use their own so they never meet a running demo)
set -euo pipefail
source "$(dirname "$0")/lib/as-root.sh"
as_root "$(realpath "$0")" "$@"
cd "$(dirname "$0")/.."

PREFIX=${XDPLB_DEMO_PREFIX:-xlb}
PORT=${XDPLB_DEMO_PORT:-8720}
MAX_SECONDS=${XDPLB_DEMO_MAX_SECONDS:-0}
HTTP_RPS=${XDPLB_DEMO_HTTP_RPS:-20}
UDP_RPS=${XDPLB_DEMO_UDP_RPS:-10}
HTTP6_RPS=${XDPLB_DEMO_HTTP6_RPS:-10}
# Each traffic run stops by itself after this long; the loop restarts it only while the demo runs.
TRAFFIC_RUN_SECONDS=600
RUN_DIR=/run/xdplb-demo/$PREFIX
PIN_DIR=/sys/fs/bpf/$PREFIX-demo
HTTP_VIP=198.18.100.1
UDP_VIP=198.18.100.2
HTTP6_VIP=2001:2:0:100::1

say() { printf 'demo: %s\n' "$*" >&2; }


if [[ ${XDPLB_DEMO_SKIP_BUILD:-0} != 1 ]]; then
  say "setup and build (idempotent)"
  bash scripts/setup.sh
  bash scripts/build.sh
fi
for f in dist/src/lab/cli.js dist/src/cli.js bpf/lb.o; do
  [[ -f $f ]] || { say "$f is missing: run bash scripts/build.sh"; exit 1; }
done

# An array, not a function: `"${LAB[@]}" ... &` then forks node itself, so $! is node's pid.
LAB=(node dist/src/lab/cli.js lab)

DAEMON_PID=
HTTP_TRAFFIC_PID=
UDP_TRAFFIC_PID=
HTTP6_TRAFFIC_PID=
LAB_STARTED=0

cleanup() {
  local status=$?
  trap - INT TERM EXIT
  say "stopping"
  # A traffic run ends its worker in the client namespace itself on TERM.
  for pid in $HTTP_TRAFFIC_PID $UDP_TRAFFIC_PID $HTTP6_TRAFFIC_PID; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $HTTP_TRAFFIC_PID $UDP_TRAFFIC_PID $HTTP6_TRAFFIC_PID; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$DAEMON_PID" 2>/dev/null && kill -KILL "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  # --detach-on-exit unpins on a clean stop; this catches a daemon that had to be killed.
  rm -rf "$PIN_DIR"
  if [[ $LAB_STARTED == 1 ]]; then
    "${LAB[@]}" down --prefix "$PREFIX" || true
  fi
  rm -rf "$RUN_DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$RUN_DIR"
if curl -s -o /dev/null -m 1 "http://127.0.0.1:$PORT/" 2>/dev/null; then
  say "something already answers on 127.0.0.1:$PORT (another demo?); stop it or set XDPLB_DEMO_PORT"
  exit 1
fi

if [[ -e /run/xdplb-lab/$PREFIX/state.json ]]; then
  say "a lab $PREFIX from an earlier run exists: taking it down first"
  "${LAB[@]}" down --prefix "$PREFIX" >&2 || true
fi
say "lab up: client, lb, switch and 3 backends (prefix $PREFIX, DSR VIPs on the backends' lo)"
LAB_STARTED=1
if ! "${LAB[@]}" up --prefix "$PREFIX" --backends 3 --mode dsr --forward-port "$PORT" --api-port 8720 >"$RUN_DIR/lab-up.txt"; then
  cat "$RUN_DIR/lab-up.txt" >&2
  say "lab up failed"
  exit 1
fi

# demo.yaml names the lb legs of the default prefix; another prefix gets its own leg names.
sed "s/\bxlb-lb\([01]\)\b/$PREFIX-lb\1/g" demo/demo.yaml >"$RUN_DIR/demo.yaml"
say "starting the daemon inside $PREFIX-lb (log: $RUN_DIR/daemon.log)"
# nsenter (not ip netns exec) keeps the host's bpffs visible. setsid puts the daemon in its own
# session so a Ctrl-C reaches only this script, which then stops it in order. Both exec (a
# background job is no group leader, so setsid does not fork): $! is the daemon's own pid.
setsid nsenter --net=/run/netns/$PREFIX-lb node dist/src/cli.js daemon --config "$RUN_DIR/demo.yaml" \
  --pin-dir "$PIN_DIR" --detach-on-exit >"$RUN_DIR/daemon.log" 2>&1 &
DAEMON_PID=$!

for _ in $(seq 1 300); do
  if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
    say "the daemon exited during start-up:"
    tail -n 20 "$RUN_DIR/daemon.log" >&2
    exit 1
  fi
  curl -s -o /dev/null -m 1 "http://127.0.0.1:$PORT/healthz" && break
  sleep 0.2
done
curl -s -o /dev/null -m 1 "http://127.0.0.1:$PORT/healthz" || { say "the daemon did not answer within 60 s"; tail -n 20 "$RUN_DIR/daemon.log" >&2; exit 1; }

# Bounded background traffic: each run stops by itself after TRAFFIC_RUN_SECONDS; the main loop
# below starts a new one only while the demo runs. setsid: Ctrl-C is for this script alone.
start_http_traffic() {
  setsid "${LAB[@]}" traffic --prefix "$PREFIX" --kind http --target "http://$HTTP_VIP/" --rps "$HTTP_RPS" \
    --duration "$TRAFFIC_RUN_SECONDS" >>"$RUN_DIR/traffic.log" 2>&1 &
  HTTP_TRAFFIC_PID=$!
}
start_udp_traffic() {
  setsid "${LAB[@]}" traffic --prefix "$PREFIX" --kind udp --target "$UDP_VIP:5300" --rps "$UDP_RPS" \
    --duration "$TRAFFIC_RUN_SECONDS" >>"$RUN_DIR/traffic.log" 2>&1 &
  UDP_TRAFFIC_PID=$!
}
start_http6_traffic() {
  setsid "${LAB[@]}" traffic --prefix "$PREFIX" --kind http --target "http://[$HTTP6_VIP]/" --rps "$HTTP6_RPS" \
    --duration "$TRAFFIC_RUN_SECONDS" >>"$RUN_DIR/traffic.log" 2>&1 &
  HTTP6_TRAFFIC_PID=$!
}
start_http_traffic
start_udp_traffic
start_http6_traffic

sleep 2
say "try it: node dist/src/lab/cli.js lab exec $([[ $PREFIX != xlb ]] && echo "--prefix $PREFIX ")client -- curl -s http://$HTTP_VIP/"
echo
echo "  xdplb demo is running"
echo "  dashboard:  http://127.0.0.1:$PORT/"
echo "  logins:     admin / xdplb-demo-admin      (administrator)"
echo "              viewer / xdplb-demo-viewer    (read only)"
echo "  services:   web  $HTTP_VIP:80/tcp  NAT -> be1..be3:8080 (weights 1:1:2)"
echo "              web6 [$HTTP6_VIP]:80/tcp  NAT -> be1..be3 [2001:2:0:1::11-13]:8080 (weights 1:1:2)"
echo "              dns  $UDP_VIP:5300/udp DSR -> be1..be3"
echo "  traffic:    $HTTP_RPS HTTP req/s, $HTTP6_RPS IPv6 HTTP req/s and $UDP_RPS UDP datagrams/s from the client (log: $RUN_DIR/traffic.log)"
echo "  Ctrl-C stops the demo and removes the lab."
echo

started=$SECONDS
while kill -0 "$DAEMON_PID" 2>/dev/null; do
  if (( MAX_SECONDS > 0 && SECONDS - started >= MAX_SECONDS )); then
    say "reached XDPLB_DEMO_MAX_SECONDS=$MAX_SECONDS"
    exit 0
  fi
  kill -0 "$HTTP_TRAFFIC_PID" 2>/dev/null || start_http_traffic
  kill -0 "$UDP_TRAFFIC_PID" 2>/dev/null || start_udp_traffic
  kill -0 "$HTTP6_TRAFFIC_PID" 2>/dev/null || start_http6_traffic
  sleep 1
done
say "the daemon exited:"
tail -n 20 "$RUN_DIR/daemon.log" >&2
exit 1
