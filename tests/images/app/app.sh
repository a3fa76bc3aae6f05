#!/bin/sh
# Seed the state on first start, then append to a log every second until
# stopped. Trapping TERM (and sleeping in the background) lets `docker stop`
# end it at once: a shell as PID 1 would otherwise ignore the signal.
set -eu
data=/var/lib/app
uploads=/srv/uploads

trap 'echo "app: stopping"; exit 0' TERM INT

if [ ! -e "$data/.initialised" ]; then
    mkdir -p "$data/notes/2024" "$uploads/incoming"
    echo 'greeting = hello' > "$data/config.ini"
    printf 'first note\n' > "$data/notes/2024/first.txt"
    printf 'upload %s\n' 1 2 3 > "$uploads/incoming/batch.txt"
    : > "$data/.initialised"
    echo "app: initialised $data and $uploads"
fi

echo "app: running as $(id -u):$(id -g)"
n=0
while :; do
    n=$((n + 1))
    echo "tick $n $(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$data/app.log"
    sleep 1 &
    wait $!
done
