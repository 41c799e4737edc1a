#!/usr/bin/env bash
# OTLP export throughput and bytes on the wire (issue 22): the same ledger of SPANS spans
# exported by `bridge export --exporter otlp` to a loopback receiver in each encoding, in one
# run: http/json (the peer), http/protobuf, and each with gzip; protobuf also with only the
# GenAI or only the OpenInference attributes (BRIDGE_OTLP_CONVENTIONS).
#
#   bench/otlp-export.sh                  100,000 spans, 3 rounds
#   OLD_BRIDGE=path bench/otlp-export.sh  also the JSON of an older bridge binary (bytes, spans/s)
#
# The ledger: an offline run of the shipped mappings (agents, model calls with their messages,
# function and MCP tools, handoffs, guardrails), its spans copied with new ids until there are
# at least SPANS of them (whole traces). Each export starts from nothing delivered (the otlp delivery rows and position
# are deleted and the tables vacuumed between runs). Reported per encoding: the median wall
# time of ROUNDS runs of `bridge export` (reading the ledger and recording the deliveries
# included, as in production), spans/s, the bridge process's CPU time (user + system, median;
# the robust figure on a shared machine), and the bytes the receiver got (body as sent).
# The receiver is bench/otlp_sink.py (Python, threaded, answers 200 at once).
. "$(dirname "$0")/lib.sh"
SPANS=${SPANS:-100000}
ROUNDS=${ROUNDS:-3}
PATH="$(dirname "$(scripts/mcp-venv.sh)"):$PATH"
bench_start otlp
machine_line
spawn python3 bench/otlp_sink.py >"$WORK/sink.port"
wait_for_file "$WORK/sink.port" || { echo "the OTLP sink did not start" >&2; exit 2; }
SINK="http://127.0.0.1:$(cat "$WORK/sink.port")"

migrated_db otlp 4 3
OPENAI_AGENTS_DISABLE_TRACING=1 "$BRIDGE" exec --offline --quiet --database-url "$(url otlp)" --mappings mappings >/dev/null
T=$(q otlp -c "SELECT count(*) FROM bridge.spans")
COPIES=$(( (SPANS + T - 1) / T ))
log "template: $T spans; copying $COPIES times"
q otlp <<SQL
CREATE TABLE template AS SELECT trace_id FROM bridge.traces;
INSERT INTO bridge.traces (trace_id, workflow_name, group_id, metadata, task_id, started_at, ended_at)
SELECT 'trace_' || md5(t.trace_id || ':' || g), t.workflow_name, t.group_id, t.metadata, t.task_id, t.started_at, t.ended_at
FROM bridge.traces t CROSS JOIN generate_series(1, $COPIES) g;
INSERT INTO bridge.spans (span_id, trace_id, parent_id, started_at, ended_at, span_data, error)
SELECT 'span_' || left(md5(s.span_id || ':' || g), 24), 'trace_' || md5(s.trace_id || ':' || g),
       CASE WHEN s.parent_id IS NULL THEN NULL ELSE 'span_' || left(md5(s.parent_id || ':' || g), 24) END,
       s.started_at, s.ended_at, s.span_data, s.error
FROM bridge.spans s CROSS JOIN generate_series(1, $COPIES) g;
-- Only the copies stay (whole traces: about SPANS spans, never fewer).
DELETE FROM bridge.traces WHERE trace_id IN (SELECT trace_id FROM template);
DROP TABLE template;
SQL
q otlp -c "VACUUM ANALYZE bridge.spans" -c "VACUUM ANALYZE bridge.traces"
N=$(q otlp -c "SELECT count(*) FROM bridge.spans")
log "ledger: $N spans in $(q otlp -c "SELECT count(*) FROM bridge.traces") traces"

reset() {
  q otlp -c "DELETE FROM bridge.span_deliveries WHERE exporter = 'otlp'" -c "DELETE FROM bridge.trace_deliveries WHERE exporter = 'otlp'" \
    -c "DELETE FROM bridge.export_positions WHERE exporter = 'otlp'"
  q otlp -c "VACUUM ANALYZE bridge.span_deliveries" -c "VACUUM ANALYZE bridge.trace_deliveries"
  curl -fsS -X POST "$SINK/reset" >/dev/null
}
# One export in mode $2/$3/$4 with binary $1; prints "wall_seconds cpu_seconds bytes requests"
# (cpu: the bridge process's user + system time, which a loaded machine disturbs far less
# than the wall clock).
run() {
  local bin=$1 proto=$2 comp=$3 conv=$4 t0 wall cpu delivered
  reset
  t0=$(now)
  OTEL_EXPORTER_OTLP_ENDPOINT=$SINK OTEL_EXPORTER_OTLP_PROTOCOL=$proto OTEL_EXPORTER_OTLP_COMPRESSION=$comp BRIDGE_OTLP_CONVENTIONS=$conv \
    /usr/bin/time -f '%U %S' -o "$WORK/time" "$bin" export --quiet --database-url "$(url otlp)" --exporter otlp >/dev/null
  wall=$(since "$t0")
  cpu=$(awk '{ printf "%.2f", $1 + $2 }' "$WORK/time")
  delivered=$(q otlp -c "SELECT count(*) FROM bridge.span_deliveries WHERE exporter = 'otlp' AND status = 'delivered'")
  [ "$delivered" = "$N" ] || { echo "otlp-export: $proto/$comp delivered $delivered of $N" >&2; exit 1; }
  echo "$wall $cpu $(curl -fsS "$SINK/stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["bytes"], s["requests"])')"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

modes=("$BRIDGE http/json none both" "$BRIDGE http/protobuf none both" "$BRIDGE http/protobuf gzip both" "$BRIDGE http/json gzip both"
       "$BRIDGE http/protobuf none genai" "$BRIDGE http/protobuf none openinference" "$BRIDGE http/protobuf gzip genai")
[ -z "${OLD_BRIDGE:-}" ] || modes=("$OLD_BRIDGE http/json none both" "${modes[@]}")
declare -A walls cpus bytes
for r in $(seq 1 "$ROUNDS"); do
  for m in "${modes[@]}"; do
    read -r bin proto comp conv <<<"$m"
    read -r w c b n <<<"$(run "$bin" "$proto" "$comp" "$conv")"
    key="$bin|$proto|$comp|$conv"
    walls[$key]+="$w"$'\n'
    cpus[$key]+="$c"$'\n'
    bytes[$key]=$b
    log "round $r: $bin $proto/$comp/$conv: $w s wall, $c s cpu, $b bytes, $n requests"
  done
done
base="$BRIDGE|http/json|none|both"
BW=$(printf '%s' "${walls[$base]}" | median)
BC=$(printf '%s' "${cpus[$base]}" | median)
BB=${bytes[$base]}
echo
echo "$N spans, median of $ROUNDS exports each; ratios against this bridge's http/json"
echo
echo '| bridge, encoding, attributes | wall (s) | spans/s (wall) | bridge CPU (s) | spans per CPU-s | bytes on the wire | bytes/span | bytes vs JSON | spans per CPU-s vs JSON |'
echo '|---|---|---|---|---|---|---|---|---|'
for m in "${modes[@]}"; do
  read -r bin proto comp conv <<<"$m"
  key="$bin|$proto|$comp|$conv"
  w=$(printf '%s' "${walls[$key]}" | median)
  c=$(printf '%s' "${cpus[$key]}" | median)
  b=${bytes[$key]}
  label=$([ "$bin" = "$BRIDGE" ] && echo "this" || echo "old")
  printf '| %s, %s%s, %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$proto" "$([ "$comp" = gzip ] && echo " + gzip")" "$conv" \
    "$w" "$(awk -v n="$N" -v w="$w" 'BEGIN { printf "%.0f", n / w }')" "$c" "$(awk -v n="$N" -v c="$c" 'BEGIN { printf "%.0f", n / c }')" \
    "$b" "$(awk -v b="$b" -v n="$N" 'BEGIN { printf "%.0f", b / n }')" "$(ratio "$b" "$BB")" "$(ratio "$BC" "$c")"
done
