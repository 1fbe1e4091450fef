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
# format.h; a file in src/cluster/ only ingest.h, outbox.h, stats.h,
# prom.h and partition.h; never daemon.h or shards.h.
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
for f in $(find src -name '*.[ch]' | sort); do
    layer=$(echo "$f" | cut -d/ -f2)
    ok=$(allowed "$layer")
    if [ -z "$ok" ]; then
        echo "$f: folder '$layer' is not a known layer (add it to scripts/check-layers.sh)"
        bad=1
        continue
    fi
    # Every quoted include with a folder: "layer/file.h".
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z_]*\)\/[^"]*".*/\1/p' "$f" | sort -u); do
        case " $ok " in
        *" $inc "*) ;;
        *)
            line=$(grep -n "#[[:space:]]*include[[:space:]]*\"$inc/" "$f" | head -1)
            echo "$f:${line%%:*}: layer '$layer' may not include '$inc/' (${line#*:})"
            bad=1
            ;;
        esac
    done
done

# Adapters talk to the core through its ports only: inputs (src/in/) and
# sinks (src/out/) may include from core/ only the headers listed here.
check_ports() {
    dir=$1
    what=$2
    ports=$3
    for f in $(find "$dir" -name '*.[ch]' | sort); do
        for h in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"core\/\([^"]*\)".*/\1/p' "$f" | sort -u); do
            case " $ports " in
            *" $h "*) ;;
            *)
                line=$(grep -n "#[[:space:]]*include[[:space:]]*\"core/$h\"" "$f" | head -1)
                echo "$f:${line%%:*}: $what may include from core/ only $ports (not core/$h)"
                bad=1
                ;;
            esac
        done
    done
}
check_ports src/in "an input" "ingest.h stats.h prom.h"
check_ports src/out "a sink" "outbox.h stats.h prom.h format.h"
check_ports src/cluster "the cluster layer" "ingest.h outbox.h stats.h prom.h partition.h"

# The engine is pure: the clock is read by the runtime and passed down.
if grep -n 'ls_clock_\|clock_gettime\|gettimeofday\|time(NULL)' src/engine/*.c src/engine/*.h; then
    echo "src/engine: reads a clock (the engine takes ls_now from its caller)"
    bad=1
fi
exit $bad
