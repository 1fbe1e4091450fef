#!/bin/sh
# check-layers.sh - fails when a file under src/ includes a layer it may not.
#
# The layers and what each may include (docs/architecture.md):
#   base    base                                       (libc only)
#   engine  base engine                                (pure: no clock reads)
#   store   base engine store
#   mqtt    base mqtt
#   conf    base engine mqtt conf
#   core    base engine store conf core
#   in      base engine conf core mqtt in              (adapters: core's ports)
#   out     base engine conf core mqtt out
#   api     base engine conf core api
#   cluster base engine conf core cluster              (core's ports only)
#   app     everything                                 (nothing includes app/)
# Adapters see only the core's ports: a file in src/in/ may include from
# core/ only ingest.h (the port inputs feed the shards through), stats.h
# and prom.h (their own figures); a file in src/out/ only outbox.h (the
# port sinks read the committed events through), stats.h, prom.h and
# format.h; a file in src/api/ only service.h (the operations routes call),
# outbox.h (event reads), stats.h, prom.h, and the value headers
# metrics.h (the counters it adds to), format.h and device_in.h (the JSON
# of devices and alarms); a file in src/cluster/ only ingest.h, outbox.h,
# stats.h, prom.h and partition.h; never daemon.h or shards.h.
# Run from anywhere; exit 0 when clean, 1 with one line per violation.
cd "$(dirname "$0")/.." || exit 2

allowed() {
    case $1 in
    base) echo "base" ;;
    engine) echo "base engine" ;;
    store) echo "base engine store" ;;
    mqtt) echo "base mqtt" ;;
    conf) echo "base engine mqtt conf" ;;
    core) echo "base engine store conf core" ;;
    in) echo "base engine conf core mqtt in" ;;
    out) echo "base engine conf core mqtt out" ;;
    api) echo "base engine conf core api" ;;
    cluster) echo "base engine conf core cluster" ;;
    app) echo "base engine store mqtt conf core in out api cluster app" ;;
    *) echo "" ;;
    esac
}

bad=0

# check_includes FILE PREFIX END ALLOWED WHAT: every quoted include of
# FILE that reads "PREFIX<name>END..." must have its <name> among the
# words of ALLOWED; each other one is reported, with its line, as "WHAT
# 'PREFIX<name>END'".  With PREFIX "" and END "/" the name is the folder
# (the layer) of "layer/file.h"; with PREFIX "core/" and END '"' it is the
# file of a core header.
check_includes() {
    inc_file=$1
    inc_prefix=$2
    inc_end=$3
    inc_ok=$4
    inc_what=$5
    for name in $(sed -n "s|^[[:space:]]*#[[:space:]]*include[[:space:]]*\"$inc_prefix\([^\"/]*\)$inc_end.*|\1|p" "$inc_file" | sort -u); do
        case " $inc_ok " in
        *" $name "*) ;;
        *)
            line=$(grep -n "#[[:space:]]*include[[:space:]]*\"$inc_prefix$name$inc_end" "$inc_file" | head -1)
            echo "$inc_file:${line%%:*}: $inc_what '$inc_prefix$name${inc_end%\"}' (${line#*:})"
            bad=1
            ;;
        esac
    done
}

for f in $(find src -name '*.[ch]' | sort); do
    layer=$(echo "$f" | cut -d/ -f2)
    ok=$(allowed "$layer")
    if [ -z "$ok" ]; then
        echo "$f: folder '$layer' is not a known layer (add it to scripts/check-layers.sh)"
        bad=1
        continue
    fi
    check_includes "$f" "" "/" "$ok" "layer '$layer' may not include"
done

# Adapters talk to the core through its ports only: inputs (src/in/),
# sinks (src/out/) and routes (src/api/) may include from core/ only the
# headers listed here.
check_ports() {
    for f in $(find "$1" -name '*.[ch]' | sort); do
        check_includes "$f" "core/" '"' "$3" "$2 may include from core/ only $3, not"
    done
}
check_ports src/in "an input" "ingest.h stats.h prom.h"
check_ports src/out "a sink" "outbox.h stats.h prom.h format.h"
check_ports src/api "the API" "service.h outbox.h stats.h prom.h metrics.h format.h device_in.h"
check_ports src/cluster "the cluster layer" "ingest.h outbox.h stats.h prom.h partition.h"

# The engine is pure: the clock is read by the runtime and passed down.
if grep -n 'ls_clock_\|clock_gettime\|gettimeofday\|time(NULL)' src/engine/*.c src/engine/*.h; then
    echo "src/engine: reads a clock (the engine takes ls_now from its caller)"
    bad=1
fi
exit $bad
