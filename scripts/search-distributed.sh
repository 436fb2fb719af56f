#!/usr/bin/env bash
# The search stage as a keras-tuner chief and WORKERS worker processes on this host.
#
#   scripts/search-distributed.sh [PROFILE] [WORKERS] [PORT]
#     PROFILE  folder of the params.yaml and dvc.yaml (default .)
#     WORKERS  worker processes beside the chief (default 2)
#     PORT     the chief's oracle port (default: a free one)
#
# Runs the data stage first, then the search stage's own command from dvc.yaml once per process
# (KERASTUNER_TUNER_ID chief, tuner0, tuner1, ...; KERASTUNER_ORACLE_IP/PORT), waits for all, and
# records the chief's outputs with `dvc commit`. Worker logs: PROFILE/.tuner/worker*.log.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-.}
workers=${2:-2}
bin=$PWD/.venv/bin
"$bin/dvc" repro "$profile/dvc.yaml:data"
port=${3:-$("$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
cmd=$("$bin/python" -c 'import sys, yaml; print(" ".join(yaml.safe_load(open(sys.argv[1]))["stages"]["search"]["cmd"].split()))' "$profile/dvc.yaml")
export PATH="$bin:$PATH" KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=$port
cd "$profile"
mkdir -p .tuner
pids=()
for i in $(seq 0 $((workers - 1))); do
  KERASTUNER_TUNER_ID=tuner$i $cmd > ".tuner/worker$i.log" 2>&1 &
  pids+=($!)
done
echo "chief on 127.0.0.1:$port, $workers worker(s) (worker logs: $profile/.tuner/worker*.log)"
status=0
KERASTUNER_TUNER_ID=chief $cmd || status=$?
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
[ "$status" = 0 ] || exit "$status"
cd - >/dev/null
"$bin/dvc" commit -f "$profile/dvc.yaml:search"
