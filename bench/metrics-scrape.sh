#!/usr/bin/env bash
# Benchmark: Prometheus scrapes of `bridge exec --metrics-addr` (the one HTTP server, HTTPServer)
# against a PEER bridge binary (e.g. the previous main's), in the same run.
#
# Each binary runs an idle `bridge exec --offline --watch` worker on its own empty database and
# serves /metrics; a Python client then makes SCRAPES sequential scrapes, each on a new
# connection (what Prometheus does), first alone and then while IDLE other connections sit open
# without sending anything. The two binaries alternate, ROUNDS times each; the best round counts.
#
#   PEER=/path/to/old/bridge bench/metrics-scrape.sh [SCRAPES] [IDLE] [ROUNDS]
# BRIDGE (default: the release build) is the binary under test.
. "$(dirname "$0")/lib.sh"
SCRAPES=${1:-2000}
IDLE=${2:-500}
ROUNDS=${3:-3}
: "${PEER:?set PEER to the bridge binary to compare with}"
PIDS=()
bench_cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
bench_start metrics
noop_mappings "$WORK/mappings" "Project Manager"

# Starts BINARY's worker on database DB; prints the metrics address.
serve() {
  local binary=$1 db=$2 logfile="$WORK/$2.log"
  migrated_db "$db"
  "$binary" exec --offline --watch --poll-interval 1 --database-url "$(url "$db")" \
    --mappings "$WORK/mappings" --metrics-addr 127.0.0.1:0 >"$logfile" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do
    local addr
    addr=$(sed -n 's|.*metrics on http://\([^/]*\)/metrics.*|\1|p' "$logfile" | head -1)
    if [ -n "$addr" ]; then echo "$addr"; return; fi
    sleep 0.1
  done
  log "no metrics address from $binary: $(cat "$logfile")"
  exit 1
}

# Scrapes per second at ADDR: SCRAPES sequential scrapes with IDLE connections open.
scrapes_per_second() {
  python3 - "$1" "$SCRAPES" "$2" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
scrapes, idle = int(sys.argv[2]), int(sys.argv[3])
sleepers = [socket.create_connection((host, int(port))) for _ in range(idle)]
start = time.monotonic()
for _ in range(scrapes):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data[:100]
print(f"{scrapes / (time.monotonic() - start):.0f}")
for s in sleepers:
    s.close()
PY
}

NEW_ADDR=$(serve "$BRIDGE" bench_new)
OLD_ADDR=$(serve "$PEER" bench_old)
machine_line
echo "bridge: $BRIDGE; peer: $PEER; $SCRAPES scrapes per round, best of $ROUNDS"
for idle in 0 "$IDLE"; do
  best_new=0 best_old=0
  for _ in $(seq 1 "$ROUNDS"); do
    n=$(scrapes_per_second "$NEW_ADDR" "$idle"); [ "$n" -gt "$best_new" ] && best_new=$n
    o=$(scrapes_per_second "$OLD_ADDR" "$idle"); [ "$o" -gt "$best_old" ] && best_old=$o
  done
  echo "idle connections $idle: bridge $best_new scrapes/s, peer $best_old scrapes/s, ratio $(ratio "$best_new" "$best_old")"
done
