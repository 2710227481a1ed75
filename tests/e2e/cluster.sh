#!/usr/bin/env bash
# End-to-end control plane for portcullis (see README.md, "End-to-end tests").
#
#   tests/e2e/cluster.sh build          build (once) and cache kube-apiserver and kubectl
#   tests/e2e/cluster.sh run -- CMD...  start etcd + kube-apiserver on loopback, run CMD with
#                                       E2E_* variables set, stop everything, assert none is left
#   tests/e2e/cluster.sh apiserver-start|apiserver-stop|unreachable-on|unreachable-off
#                                       (inside `run`, for the tests: restart the API server, drop
#                                       packets to it)
#
# Everything comes from Debian's packages: etcd-server, golang-go (Go 1.19 on bookworm), and
# the orig tarball of the `kubernetes` source package (upstream v1.20.2 with vendor/), built in
# GOPATH mode with no network. Binaries are cached in $E2E_CACHE (~/.cache/portcullis-e2e).
set -euo pipefail

SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"

K8S_DEBIAN_VERSIONS="1.20.5+really1.20.2-1.1+deb12u1 1.20.5+really1.20.2-1"
K8S_ORIG="kubernetes_1.20.5+really1.20.2.orig.tar.gz"
K8S_ORIG_SHA256="b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc"
K8S_VERSION="v1.20.2"
E2E_CACHE="${E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis-e2e}"
BIN_DIR="$E2E_CACHE/$K8S_VERSION"
SRC_LIST=/etc/apt/sources.list.d/portcullis-e2e-src.sources
# Bump when the build below changes, so that a cached binary built differently is rebuilt.
RECIPE="$K8S_ORIG_SHA256 recipe 3"

log() { echo "cluster.sh: $*" >&2; }
die() { log "$*"; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else die "as root, or by hand: $*"; fi
}

# apt downloads as its own user (_apt) when it can write the directory.
apt_dir() {
  mkdir -p "$1"
  if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$1"; fi
}

# Debian packages the build and the control plane need.
ensure_packages() {
  local missing=()
  command -v go >/dev/null 2>&1 || missing+=(golang-go)
  command -v rsync >/dev/null 2>&1 || missing+=(rsync)
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  command -v make >/dev/null 2>&1 || missing+=(make)
  command -v gcc >/dev/null 2>&1 || missing+=(gcc)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v pgrep >/dev/null 2>&1 || missing+=(procps)
  command -v nft >/dev/null 2>&1 || missing+=(nftables)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y --no-install-recommends "${missing[@]}"
  fi
}

# A deb-src line for the suites that carry kubernetes 1.20.2, as an extra list file.
ensure_deb_src() {
  local v
  for v in $K8S_DEBIAN_VERSIONS; do
    if apt-cache showsrc kubernetes 2>/dev/null | grep -qx "Version: $v"; then return 0; fi
  done
  log "adding deb-src for bookworm and bullseye main ($SRC_LIST)"
  as_root tee "$SRC_LIST" >/dev/null <<LIST
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
LIST
  as_root apt-get update
}

fetch_orig() {
  local dir=$1 v
  cd "$dir"
  if [ ! -f "$K8S_ORIG" ] || ! echo "$K8S_ORIG_SHA256  $K8S_ORIG" | sha256sum -c --quiet - 2>/dev/null; then
    for v in $K8S_DEBIAN_VERSIONS; do
      # The .dsc/.debian.tar.xz may answer 404 while the orig tarball is served: the orig
      # tarball is all we need, so a failure here is judged by the checksum below.
      apt-get source --download-only "kubernetes=$v" >&2 || true
      [ -f "$K8S_ORIG" ] && break
    done
  fi
  [ -f "$K8S_ORIG" ] || die "apt-get source did not fetch $K8S_ORIG"
  echo "$K8S_ORIG_SHA256  $K8S_ORIG" | sha256sum -c --quiet - || die "$K8S_ORIG: checksum mismatch"
}

# The vendored github.com/modern-go/reflect2 v1.0.1 reads Go's map iterator by an internal layout
# that changed in Go 1.18: built with bookworm's Go 1.19, kube-apiserver dies with "fatal error:
# fault" in reflect2.(*UnsafeMapType).UnsafeIterate as soon as json-iterator encodes a map (the
# first mutating webhook's patch does). v1.0.2 is the upstream fix; Debian packages it as
# golang-github-modern-go-reflect2-dev, whose source replaces the vendored copy (extracted, not
# installed).
replace_reflect2() {
  local dl=$1 tree=$2 deb src
  (cd "$dl" && apt-get download golang-github-modern-go-reflect2-dev >&2) \
    || die "apt-get download golang-github-modern-go-reflect2-dev failed"
  deb=$(find "$dl" -maxdepth 1 -name 'golang-github-modern-go-reflect2-dev_*.deb' | head -n1)
  [ -n "$deb" ] || die "apt-get download golang-github-modern-go-reflect2-dev fetched nothing"
  dpkg-deb -x "$deb" "$dl/reflect2-deb"
  src="$dl/reflect2-deb/usr/share/gocode/src/github.com/modern-go/reflect2"
  [ -f "$src/go_above_118.go" ] || die "$(basename "$deb") is not reflect2 v1.0.2 or newer"
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  mkdir -p "$tree/vendor/github.com/modern-go/reflect2"
  cp "$src"/*.go "$tree/vendor/github.com/modern-go/reflect2/"
  log "vendored reflect2 v1.0.1 replaced by Debian's $(basename "$deb" .deb | cut -d_ -f2)"
}

fetch_kubectl() {
  local dir=$1 v deb
  cd "$dir"
  for v in $K8S_DEBIAN_VERSIONS; do
    if apt-get download "kubernetes-client=$v" >&2; then break; fi
  done
  deb=$(find . -maxdepth 1 -name 'kubernetes-client_*.deb' | head -n1)
  [ -n "$deb" ] || die "apt-get download kubernetes-client failed"
  # Extracted, not installed: the package would take /usr/bin/kubectl, which the machine
  # image's newer kubectl (used for kustomize) owns.
  dpkg-deb -x "$deb" "$dir/kubectl-deb"
  cp "$dir/kubectl-deb/usr/bin/kubectl" "$dir/kubectl"
}

# Debian's prometheus server, started by the tests on loopback (never as the system service): the
# installed one if there is one, else the package's files extracted into the cache, not installed.
ensure_prometheus() {
  if [ -n "${E2E_PROMETHEUS:-}" ]; then
    [ -x "$E2E_PROMETHEUS" ] || die "E2E_PROMETHEUS=$E2E_PROMETHEUS is not executable"
  elif command -v prometheus >/dev/null 2>&1; then
    E2E_PROMETHEUS=$(command -v prometheus)
  else
    local dir="$E2E_CACHE/prometheus"
    if [ ! -x "$dir/usr/bin/prometheus" ]; then
      log "extracting Debian's prometheus package into $dir"
      rm -rf "$dir" && apt_dir "$dir/dl"
      (cd "$dir/dl" && apt-get download prometheus >&2) || die "apt-get download prometheus failed"
      dpkg-deb -x "$dir"/dl/prometheus_*.deb "$dir"
    fi
    E2E_PROMETHEUS="$dir/usr/bin/prometheus"
  fi
  export E2E_PROMETHEUS
}

cmd_build() {
  if [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kubectl" ] \
    && [ "$(cat "$BIN_DIR/recipe" 2>/dev/null)" = "$RECIPE" ] \
    && "$BIN_DIR/kube-apiserver" --version 2>/dev/null | grep -q "$K8S_VERSION"; then
    log "cached: $BIN_DIR ($("$BIN_DIR/kube-apiserver" --version))"
    return 0
  fi
  ensure_packages
  ensure_deb_src
  local start=$SECONDS build="$E2E_CACHE/build"
  rm -rf "$build"
  mkdir -p "$BIN_DIR"
  apt_dir "$build/dl"
  fetch_orig "$build/dl"
  fetch_kubectl "$build/dl"
  local tree="$build/gopath/src/k8s.io/kubernetes"
  mkdir -p "$tree"
  tar -xzf "$build/dl/$K8S_ORIG" -C "$tree" --strip-components=1
  replace_reflect2 "$build/dl" "$tree"
  cd "$tree"
  # GOPATH mode: a module-mode build stops with "updates to go.mod needed"; here the tree's own
  # vendor/ is what every import resolves to, and nothing is fetched (GOPROXY=off).
  export GOPATH="$build/gopath" GOCACHE="$build/gocache" GO111MODULE=off GOFLAGS='' GOPROXY=off
  export KUBE_GIT_VERSION="$K8S_VERSION" KUBE_GIT_TREE_STATE=clean
  log "make generated_files ($(go version))"
  nice -n 10 make generated_files >"$build/generated_files.log" 2>&1 \
    || { tail -n 50 "$build/generated_files.log" >&2; die "make generated_files failed"; }
  log "go build ./cmd/kube-apiserver (GOPATH mode; several minutes)"
  # The version as hack/lib/version.sh sets it (--version and /version): in GOPATH mode the
  # packages are the vendored ones.
  local ldflags="-s -w" pkg
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    pkg=k8s.io/kubernetes/vendor/$pkg
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=20 -X $pkg.gitTreeState=clean"
  done
  nice -n 10 go build -ldflags "$ldflags" -o "$build/kube-apiserver" ./cmd/kube-apiserver
  "$build/kube-apiserver" --version | grep -q "$K8S_VERSION" || die "built kube-apiserver reports $("$build/kube-apiserver" --version)"
  install -m 0755 "$build/dl/kubectl" "$BIN_DIR/kubectl"
  install -m 0755 "$build/kube-apiserver" "$BIN_DIR/kube-apiserver"
  echo "$RECIPE" >"$BIN_DIR/recipe"
  log "built $("$BIN_DIR/kube-apiserver" --version) and Debian's kubectl in $((SECONDS - start)) s"
  cd /
  chmod -R u+w "$build" 2>/dev/null || true
  rm -rf "$build"
}

# ---------------------------------------------------------------------------
# The control plane. All state lives in $E2E_DIR (a fresh temporary directory per run); every
# process started records its PID in $E2E_DIR/pids/NAME.pid (the tests add theirs there too), and
# every command line names $E2E_DIR, which is how the final check finds a leftover.

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME CMD...: start CMD in the background, its output in $E2E_DIR/NAME.log, its PID recorded.
start() {
  local name=$1; shift
  "$@" >>"$E2E_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$E2E_DIR/pids/$name.pid"
  # Stopped by PID (stop_pid); no job notice when the tests kill it on purpose.
  disown $! 2>/dev/null || true
}

# stop_pid NAME SIGNAL: signal the recorded process and wait (up to 20 s) until it is gone.
stop_pid() {
  local name=$1 signal=${2:-TERM} pid
  [ -f "$E2E_DIR/pids/$name.pid" ] || return 0
  pid=$(cat "$E2E_DIR/pids/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (PID $pid) still running after SIG$signal; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  rm -f "$E2E_DIR/pids/$name.pid"
}

wait_ready() {
  local url=$1 seconds=$2; shift 2
  for _ in $(seq $((seconds * 10))); do
    if curl -fsS --max-time 2 "$@" "$url" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

apiserver_start() {
  # shellcheck source=/dev/null
  . "$E2E_DIR/env"
  start kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$E2E_ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --secure-port="$E2E_APISERVER_PORT" --insecure-port=0 \
    --cert-dir="$E2E_DIR/apiserver" \
    --tls-cert-file="$E2E_DIR/pki/tls.crt" --tls-private-key-file="$E2E_DIR/pki/tls.key" \
    --token-auth-file="$E2E_DIR/tokens.csv" --authorization-mode=Node,RBAC \
    --service-account-issuer="https://127.0.0.1:$E2E_APISERVER_PORT" \
    --service-account-key-file="$E2E_DIR/sa.key" --service-account-signing-key-file="$E2E_DIR/sa.key" \
    --api-audiences="https://127.0.0.1:$E2E_APISERVER_PORT" \
    --service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none \
    --profiling=false --v=1
  if ! wait_ready "https://127.0.0.1:$E2E_APISERVER_PORT/readyz" 120 \
    --cacert "$E2E_DIR/pki/ca.crt" -H "Authorization: Bearer $E2E_TOKEN"; then
    tail -n 40 "$E2E_DIR/kube-apiserver.log" >&2
    die "kube-apiserver did not become ready"
  fi
}

# The API server unreachable rather than refusing, as when its node is gone: packets to its port
# on loopback are dropped (an nftables table of this run's own), so a connect never completes.
unreachable_on() {
  # shellcheck source=/dev/null
  . "$E2E_DIR/env"
  local table="portcullis_e2e_$E2E_APISERVER_PORT"
  echo "$table" >"$E2E_DIR/nft-table"
  nft add table inet "$table"
  nft add chain inet "$table" input '{ type filter hook input priority -10; policy accept; }'
  nft add rule inet "$table" input tcp dport "$E2E_APISERVER_PORT" drop
}

unreachable_off() {
  if [ -f "$E2E_DIR/nft-table" ]; then
    nft delete table inet "$(cat "$E2E_DIR/nft-table")" 2>/dev/null || true
    rm -f "$E2E_DIR/nft-table"
  fi
}

# Every process of this run is gone: each recorded PID and anything naming $E2E_DIR.
assert_none_left() {
  local left=0 file pid
  for file in "$E2E_DIR"/pids/*.pid; do
    [ -e "$file" ] || continue
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then log "left running: $(basename "$file" .pid) (PID $pid)"; left=1; fi
  done
  if pgrep -f -- "$E2E_DIR" >/dev/null 2>&1; then
    log "left running, naming $E2E_DIR:"; pgrep -a -f -- "$E2E_DIR" >&2 || true; left=1
  fi
  [ "$left" = 0 ] || return 1
  log "no process left running"
}

cleanup() {
  local status=$? file name
  trap - EXIT INT TERM
  # The tests' own processes first (portcullis, prometheus), then the API server, then etcd.
  for file in "$E2E_DIR"/pids/*.pid; do
    [ -e "$file" ] || continue
    name=$(basename "$file" .pid)
    case "$name" in kube-apiserver|etcd) ;; *) stop_pid "$name" TERM ;; esac
  done
  unreachable_off
  stop_pid kube-apiserver TERM
  stop_pid etcd TERM
  if ! assert_none_left; then status=1; fi
  if [ "$status" != 0 ]; then
    for file in "$E2E_DIR"/*.log; do
      [ -e "$file" ] || continue
      log "--- last lines of $file"; tail -n 20 "$file" >&2
    done
  fi
  if [ "${E2E_KEEP:-}" = 1 ]; then log "kept $E2E_DIR"; else rm -rf "$E2E_DIR"; fi
  exit "$status"
}

cmd_run() {
  [ "${1:-}" = "--" ] && shift
  [ $# -gt 0 ] || die "usage: $0 run -- CMD..."
  (cmd_build)
  cd "$REPO"
  ensure_packages
  ensure_prometheus
  E2E_DIR=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-e2e.XXXXXX")
  export E2E_DIR
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "$E2E_DIR/pids" "$E2E_DIR/apiserver"

  # The API server's serving certificate from our own `portcullis certs`; the same CA signs
  # nothing else here (the tests make the webhook's own with another `portcullis certs`).
  ${E2E_PORTCULLIS:-cargo run --quiet --} certs --out "$E2E_DIR/pki" --dns localhost --ip 127.0.0.1 >/dev/null
  openssl genrsa -out "$E2E_DIR/sa.key" 2048 2>/dev/null
  local token
  token=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  echo "$token,admin,admin,system:masters" >"$E2E_DIR/tokens.csv"
  chmod 600 "$E2E_DIR/tokens.csv"
  cat >"$E2E_DIR/env" <<ENV
E2E_ETCD_PORT=$(free_port)
E2E_ETCD_PEER_PORT=$(free_port)
E2E_APISERVER_PORT=$(free_port)
E2E_TOKEN=$token
ENV
  # shellcheck source=/dev/null
  . "$E2E_DIR/env"

  start etcd etcd --name e2e --data-dir "$E2E_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$E2E_ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$E2E_ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$E2E_ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$E2E_ETCD_PEER_PORT" \
    --initial-cluster "e2e=http://127.0.0.1:$E2E_ETCD_PEER_PORT" \
    --unsafe-no-fsync
  wait_ready "http://127.0.0.1:$E2E_ETCD_PORT/health" 30 || die "etcd did not become ready"
  apiserver_start

  cat >"$E2E_DIR/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster:
      server: https://127.0.0.1:$E2E_APISERVER_PORT
      certificate-authority: $E2E_DIR/pki/ca.crt
users:
  - name: admin
    user:
      token: $token
contexts:
  - name: e2e
    context: {cluster: e2e, user: admin}
current-context: e2e
KUBECONFIG
  export KUBECONFIG="$E2E_DIR/kubeconfig"
  export E2E_KUBECTL="$BIN_DIR/kubectl" E2E_CLUSTER_SH="$SELF"
  export E2E_APISERVER="https://127.0.0.1:$E2E_APISERVER_PORT"
  log "kube-apiserver $("$BIN_DIR/kube-apiserver" --version | cut -d' ' -f2) on $E2E_APISERVER, $(etcd --version | head -n1), kubectl $("$E2E_KUBECTL" version --client --short 2>/dev/null | cut -d' ' -f3), $("$E2E_PROMETHEUS" --version 2>&1 | head -n1); state in $E2E_DIR"
  "$@"
}

case "${1:-}" in
  build) cmd_build ;;
  run) shift; cmd_run "$@" ;;
  apiserver-stop)
    [ -n "${E2E_DIR:-}" ] || die "apiserver-stop runs inside '$0 run'"
    stop_pid kube-apiserver "${2:-KILL}" ;;
  apiserver-start)
    [ -n "${E2E_DIR:-}" ] || die "apiserver-start runs inside '$0 run'"
    apiserver_start ;;
  unreachable-on|unreachable-off)
    [ -n "${E2E_DIR:-}" ] || die "$1 runs inside '$0 run'"
    if [ "$1" = unreachable-on ]; then unreachable_on; else unreachable_off; fi ;;
  *) die "usage: $0 build | run -- CMD... | apiserver-start | apiserver-stop [SIGNAL] | unreachable-on | unreachable-off" ;;
esac
