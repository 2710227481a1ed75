#!/usr/bin/env bash
# Instructions per review (make bench-count): the release server under
# valgrind --tool=callgrind (instruction counts, which do not depend on the
# machine's load) answering a fixed number of reviews of each captured body
# over HTTP/2 and TLS from h2load, on loopback.
#
# Each body is run twice, N and 2N reviews, each time in a fresh server with
# one h2load connection (-c 1 -m 1: one review in flight, as the API server
# sends on a quiet connection, and the same sequence of reads and writes on
# every run); the difference divided by N is the cost of one review, free of
# start-up, the TLS handshake and shutdown. benches/callgrind_components.py
# splits it by component (crate prefixes of the functions; generic code such as
# malloc and memcpy charged to its callers by callgrind's inclusive costs). Logging is the
# server's default (info): a denial logs one line, as in production.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/portcullis}
N=${N:-2000}
PORT=${PORT:-18543}
ADMIN=${ADMIN:-19190}
OUT=${OUT:-target/bench-count}
BODIES=${BODIES:-"service-denied=tests/fixtures/demo/nodeport-production.json
service-allowed=tests/fixtures/v1.32/service-create-nodeport.json
ingress-denied=tests/fixtures/demo/ingress-plain-production.json
ingress-allowed=tests/fixtures/v1.32/ingress-create-tls.json"}

for tool in valgrind h2load python3; do
  command -v "$tool" >/dev/null || { echo "count.sh: $tool not found (valgrind: apt-get install valgrind; h2load: nghttp2-client)" >&2; exit 1; }
done
mkdir -p "$OUT"
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
"$BIN" certs --out "$work/certs" --dns localhost --ip 127.0.0.1 >/dev/null 2>&1

# profile NAME BODY REQUESTS: one server under callgrind answering REQUESTS reviews
profile() {
  local name=$1 body=$2 requests=$3
  local log="$OUT/$name-$requests.log"
  env -u RUST_LOG valgrind --tool=callgrind --callgrind-out-file="$OUT/$name-$requests.callgrind" \
    "$BIN" serve --no-cluster --policies policies --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$ADMIN \
    --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" --reload-interval 0s 2>"$log" &
  pid=$!
  # Ready when it logs "serving" (no probe requests, which would be counted).
  for _ in $(seq 1 1200); do
    grep -q ' serving' "$log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "server under callgrind exited; see $log" >&2; exit 1; }
    sleep 0.1
  done
  h2load -n "$requests" -c 1 -m 1 -t 1 -H 'content-type: application/json' -d "$body" \
    "https://127.0.0.1:$PORT/validate" > "$OUT/$name-$requests.h2load" 2>&1
  local ok
  ok=$(awk '/^status codes:/ {print $3}' "$OUT/$name-$requests.h2load")
  if [ "$ok" != "$requests" ]; then
    echo "$name: $ok of $requests reviews answered 2xx; see $OUT/$name-$requests.h2load" >&2
    exit 1
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
}

echo "instructions per review (callgrind, $N and $((2 * N)) reviews per body, HTTP/2 over TLS, one review in flight)"
printf '%-16s %9s %8s %8s %8s %8s %8s %8s %8s %8s\n' body total TLS HTTP/2 decode engine encode metrics logging runtime
while IFS='=' read -r name body; do
  [ -n "$name" ] || continue
  profile "$name" "$body" "$N"
  profile "$name" "$body" "$((2 * N))"
  python3 benches/callgrind_components.py "$N" "$OUT/$name-$N.callgrind" "$OUT/$name-$((2 * N)).callgrind" --json \
    > "$OUT/$name.json"
  python3 - "$name" "$OUT/$name.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[2]))
keys = ["total", "TLS", "HTTP/2", "decode", "engine", "encode", "metrics", "logging", "runtime"]
print(f"{sys.argv[1]:<16} {r['total']:>9} " + " ".join(f"{r[k]:>8}" for k in keys[1:]))
EOF
done <<< "$BODIES"
echo "profiles: $OUT/*.callgrind (callgrind_annotate --inclusive=yes $OUT/<body>-$((2 * N)).callgrind)"
