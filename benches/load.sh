#!/usr/bin/env bash
# Load run against the release binary over HTTPS on loopback (make bench).
# Reports reviews/s and p50/p90/p99 latency at saturation and at a fixed
# 1,000 reviews/s (HTTP/2, like the API server) and at saturation over
# HTTP/1.1 keep-alive, the server's CPU per review (from /proc), its peak
# resident memory and its start-up-to-ready time.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/portcullis}
BODY=${BODY:-tests/fixtures/v1.32/service-create-nodeport.json}
PORT=${PORT:-18443}
ADMIN=${ADMIN:-19090}
N=${N:-200000}
POLICIES=${POLICIES:-policies}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

"$BIN" certs --out "$work/certs" --dns localhost --ip 127.0.0.1 >/dev/null 2>&1
start=$(date +%s%N)
RUST_LOG=warn "$BIN" serve --no-cluster --policies "$POLICIES" --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$ADMIN \
  --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" --max-in-flight 4096 &
pid=$!
until curl -sf -o /dev/null http://127.0.0.1:$ADMIN/readyz; do sleep 0.001; done
ready_ms=$(( ($(date +%s%N) - start) / 1000000 ))

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
# percentile P of the request times (µs, third column) in an h2load log
pct() { sort -n -k3,3 "$1" | awk -v p="$2" '{a[NR]=$3} END {i=int(NR*p/100); if (i<1) i=1; printf "%.0f", a[i]}'; }

run() { # name, then h2load arguments
  local name=$1; shift
  local before after
  before=$(cpu)
  h2load "$@" -H 'content-type: application/json' -d "$BODY" --log-file="$work/$name.log" \
    "https://127.0.0.1:$PORT/validate" > "$work/$name.out" 2>&1
  after=$(cpu)
  local done rps
  done=$(awk '/^requests:/ {print $8}' "$work/$name.out")
  rps=$(awk '/^finished in/ {print $4}' "$work/$name.out")
  local cpu_us=$(( (after - before) * 1000000 / ticks / (done > 0 ? done : 1) ))
  printf '%-26s %8s req/s  ok %7s  p50 %6s µs  p90 %6s µs  p99 %6s µs  server CPU %3s µs/review\n' \
    "$name" "$rps" "$done" "$(pct "$work/$name.log" 50)" "$(pct "$work/$name.log" 90)" "$(pct "$work/$name.log" 99)" "$cpu_us"
}

echo "machine: $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo | sed 's/^ *//')"
echo "body: $BODY ($(stat -c %s "$BODY") bytes); start-up to ready: ${ready_ms} ms"
run warm-up            -n 20000 -c 4 -m 16 -t 1 >/dev/null
run h2-saturation      -n "$N" -c 4 -m 32 -t 1
run h2-1000-per-second -n 20000 -c 1 -m 1 -t 1 --rps=1000
run h1-saturation      --h1 -n "$((N / 2))" -c 32 -t 1
echo "peak resident memory: $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)"

# portcullis check over a 10,000-object stream (half Services, half Ingresses).
awk 'BEGIN {
  for (i = 0; i < 10000; i++) {
    if (i % 2 == 0) printf "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-%d\n  namespace: %s\nspec:\n  type: %s\n  ports:\n  - port: 80\n", i, (i % 4 == 0 ? "production" : "dev"), (i % 8 == 0 ? "NodePort" : "ClusterIP");
    else printf "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: ing-%d\n  namespace: dev\nspec:\n  ingressClassName: nginx\n  tls:\n  - hosts: [h%d.example.com]\n    secretName: tls-%d\n  rules:\n  - host: h%d.example.com\n", i, i, i, i;
  }
}' > "$work/10k.yaml"
check_start=$(date +%s%N)
"$BIN" check "$work/10k.yaml" > "$work/check.out" || true
echo "check of 10,000 objects ($(stat -c %s "$work/10k.yaml") bytes): $(( ($(date +%s%N) - check_start) / 1000000 )) ms ($(tail -1 "$work/check.out"))"
