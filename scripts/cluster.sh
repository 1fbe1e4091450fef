#!/bin/sh
# cluster.sh - a lastseen cluster on one machine: three NATS servers
# (JetStream, routes between them, the MQTT listener, the dev.* mapping)
# and N lastseen nodes, all on free loopback ports.  See docs/cluster.md.
#
#   scripts/cluster.sh up DIR [--nodes N] [--partitions P] [-- NODE ARGS...]
#   scripts/cluster.sh down DIR
#
# up writes under DIR: nats-K.conf, nats-K.log and the JetStream store
# nats-K/ of each server, node-K/ (store.data_dir, with events.jsonl) and
# node-K.log of each node, and DIR/cluster.json:
#   {"nodes": [{"name", "http": "127.0.0.1:PORT", "pid"}],
#    "nats":  [{"url": "nats://127.0.0.1:PORT", "mqtt": "127.0.0.1:PORT", "pid"}]}
# Arguments after -- go to every node (--set state.default_inactivity_timeout=30s).
# It waits (boundedly) for the servers to form a JetStream cluster, for the
# nodes to answer /healthz and for every partition to be owned; when
# something does not come up it stops what it started and fails with the
# log to read.  cluster.json's servers also give their monitoring address
# ("monitor", nats-server's /healthz, /jsz).  down stops the
# nodes (they hand their partitions over), then the servers, by the pids of
# cluster.json.  The binary is $LASTSEEN_BIN, else build/lastseen.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
BIN=${LASTSEEN_BIN:-$here/build/lastseen}
NATS_WAIT=30   # s: servers up and a JetStream meta leader elected
NODE_WAIT=20   # s: a node answers /healthz
OWN_WAIT=60    # s: every partition owned by some node
STOP_WAIT=10   # s: a process exits after SIGTERM

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# N free loopback TCP ports, one per line.
free_ports() {
    /usr/bin/python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
EOF
}

# Polls command "$@" every 0.2 s for up to $1 s; 0 once it succeeds.
wait_for() {
    t=$1
    shift
    i=0
    while [ "$i" -lt $((t * 5)) ]; do # t * 5 turns of 0.2 s
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
        i=$((i + 1))
    done
    return 1
}

alive() { kill -0 "$1" 2>/dev/null; }

meta_leader() { curl -sf "http://127.0.0.1:$1/jsz" | grep -q '"leader": *"[^"]'; }

http_ok() { curl -sf -o /dev/null "http://$1/healthz"; }

# Sum of the partitions the nodes own (from their /api/v1/stats), given as host:port.
owned_total() {
    total=0
    for a in "$@"; do
        n=$(curl -sf "http://$a/api/v1/stats" | /usr/bin/python3 -c \
            'import json,sys; print(len(json.load(sys.stdin)["cluster"]["owned"]))' 2>/dev/null) ||
            n=0
        total=$((total + n))
    done
    echo "$total"
}

all_owned() {
    want=$1
    shift
    [ "$(owned_total "$@")" -eq "$want" ]
}

# Stops what up started in $dir, then fails with message $*.
fail_up() {
    stop_pids "$dir"/node-*.pid
    stop_pids "$dir"/nats-*.pid
    rm -f "$dir/cluster.json"
    die "$@"
}

up() {
    dir=$1
    shift
    nodes=3
    partitions=64
    while [ $# -gt 0 ]; do
        case $1 in
        --nodes) nodes=${2:?--nodes needs a number}; shift 2 ;;
        --partitions) partitions=${2:?--partitions needs a number}; shift 2 ;;
        --) shift; break ;;
        *) usage ;;
        esac
    done
    [ -x "$BIN" ] || die "no lastseen binary at $BIN (make build, or set LASTSEEN_BIN)"
    command -v nats-server >/dev/null || die "nats-server is not installed (make deps)"
    [ -e "$dir/cluster.json" ] && die "$dir/cluster.json exists: run 'cluster.sh down $dir' first"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)

    set -- "$@" # the node arguments
    ports=$(free_ports $((12 + nodes)))
    port() { echo "$ports" | sed -n "${1}p"; }
    routes="nats-route://127.0.0.1:$(port 3), nats-route://127.0.0.1:$(port 7), nats-route://127.0.0.1:$(port 11)"
    urls=""
    nats_json=""
    for k in 1 2 3; do
        b=$(((k - 1) * 4))
        client=$(port $((b + 1)))
        monitor=$(port $((b + 2)))
        route=$(port $((b + 3)))
        mqtt=$(port $((b + 4)))
        cat >"$dir/nats-$k.conf" <<EOF
# written by scripts/cluster.sh
server_name: ls-nats-$k
listen: 127.0.0.1:$client
http: 127.0.0.1:$monitor
jetstream {
  store_dir: "$dir/nats-$k"
  max_memory_store: 256MB
  max_file_store: 4GB
}
cluster {
  name: lastseen
  listen: 127.0.0.1:$route
  routes: [$routes]
}
mqtt {
  listen: 127.0.0.1:$mqtt
}
mappings {
  "dev.*": "ls.in.{{partition($partitions,1)}}.{{wildcard(1)}}"
}
EOF
        nats-server -c "$dir/nats-$k.conf" >"$dir/nats-$k.log" 2>&1 &
        pid=$!
        echo "$pid" >"$dir/nats-$k.pid"
        urls="$urls${urls:+,}nats://127.0.0.1:$client"
        nats_json="$nats_json${nats_json:+, }{\"url\": \"nats://127.0.0.1:$client\", \"mqtt\": \"127.0.0.1:$mqtt\", \"pid\": $pid, \"monitor\": \"127.0.0.1:$monitor\"}"
    done
    for k in 1 2 3; do
        monitor=$(port $(((k - 1) * 4 + 2)))
        pid=$(cat "$dir/nats-$k.pid")
        if ! wait_for "$NATS_WAIT" meta_leader "$monitor"; then
            alive "$pid" || fail_up "nats-server $k exited; see $dir/nats-$k.log"
            fail_up "nats-server $k has no JetStream leader after ${NATS_WAIT}s; see $dir/nats-$k.log"
        fi
    done

    nodes_json=""
    addrs=""
    k=1
    while [ "$k" -le "$nodes" ]; do
        http="127.0.0.1:$(port $((12 + k)))"
        mkdir -p "$dir/node-$k"
        "$BIN" --set "http.listen=$http" --set "store.data_dir=$dir/node-$k" \
            --set "cluster.nats=$urls" --set "cluster.node=node-$k" \
            --set "cluster.partitions=$partitions" "$@" >"$dir/node-$k.log" 2>&1 &
        pid=$!
        echo "$pid" >"$dir/node-$k.pid"
        nodes_json="$nodes_json${nodes_json:+, }{\"name\": \"node-$k\", \"http\": \"$http\", \"pid\": $pid}"
        addrs="$addrs $http"
        k=$((k + 1))
    done
    printf '{"nodes": [%s],\n "nats": [%s]}\n' "$nodes_json" "$nats_json" >"$dir/cluster.json"
    k=1
    for a in $addrs; do
        pid=$(cat "$dir/node-$k.pid")
        if ! wait_for "$NODE_WAIT" http_ok "$a"; then
            alive "$pid" || fail_up "node-$k exited; see $dir/node-$k.log"
            fail_up "node-$k does not answer on $a after ${NODE_WAIT}s; see $dir/node-$k.log"
        fi
        k=$((k + 1))
    done
    # shellcheck disable=SC2086
    if ! wait_for "$OWN_WAIT" all_owned "$partitions" $addrs; then
        # shellcheck disable=SC2086
        fail_up "only $(owned_total $addrs) of $partitions partitions owned after ${OWN_WAIT}s; see $dir/node-*.log"
    fi
    echo "cluster up in $dir: $nodes node(s), 3 NATS servers, $partitions partitions"
    for a in $addrs; do echo "  http://$a/"; done
    echo "  NATS: $urls"
}

# Sends SIGTERM to the pids in files $@ and waits; SIGKILL after STOP_WAIT.
stop_pids() {
    pids=""
    for f in "$@"; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        if alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids="$pids $pid"
        fi
        rm -f "$f"
    done
    for pid in $pids; do
        if ! wait_for "$STOP_WAIT" sh -c "! kill -0 $pid"; then
            echo "cluster.sh: pid $pid did not stop in ${STOP_WAIT}s: killed" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

down() {
    dir=$1
    [ -d "$dir" ] || die "no directory $dir"
    stop_pids "$dir"/node-*.pid
    stop_pids "$dir"/nats-*.pid
    rm -f "$dir/cluster.json"
    echo "cluster in $dir stopped"
}

[ $# -ge 2 ] || usage
cmd=$1
shift
case $cmd in
up) up "$@" ;;
down) down "$1" ;;
*) usage ;;
esac
