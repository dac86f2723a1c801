#!/usr/bin/env bash
# REPRAM's seed patterns over the HTTP API, with curl (docs/http.md).
#   repram-resp conf/http.conf &
#   BASE=http://127.0.0.1:8080 bash examples/http_patterns.sh
set -euo pipefail
BASE=${BASE:-http://127.0.0.1:8080}

# Dead drop: both agents derive the key from context they share.
key="handoff:$(printf 'task-742\nagent-a\nagent-b' | sha256sum | cut -d' ' -f1)"
curl -sS -X PUT -H 'X-TTL: 600' --data-binary '{"result": 42}' "$BASE/v1/data/$key"   # agent A: OK
curl -sS "$BASE/v1/data/$key"; echo                                                  # agent B: {"result": 42}

# Heartbeat: each worker rewrites its key before the TTL runs out;
# discovery is a prefix listing, and a missing key is a dead worker.
for w in worker-1 worker-2; do
  curl -sS -X PUT -H 'X-TTL: 300' --data-binary alive "$BASE/v1/data/heartbeat:$w"
done
curl -sS "$BASE/v1/keys?prefix=heartbeat:"; echo   # {"keys":["heartbeat:worker-1","heartbeat:worker-2"]}

# Lock (advisory over HTTP: HEAD, then PUT; RESP's SET NX EX is the atomic one).
if [ "$(curl -s -o /dev/null -w '%{http_code}' -I "$BASE/v1/data/lock:report")" = 404 ]; then
  curl -sS -X PUT -H 'X-TTL: 300' --data-binary agent-7 "$BASE/v1/data/lock:report"
fi
curl -sS "$BASE/v1/data/lock:report"; echo         # agent-7 holds it for 300 s at most

# State machine: each overwrite moves the job on and restarts its TTL.
for state in queued in_progress complete; do
  curl -sS -X PUT -H 'X-TTL: 600' --data-binary "$state" "$BASE/v1/data/state:job-9"
done
curl -sS "$BASE/v1/data/state:job-9"; echo         # complete
curl -sSI "$BASE/v1/data/state:job-9" | grep -i '^X-Original-TTL'   # X-Original-TTL: 600
