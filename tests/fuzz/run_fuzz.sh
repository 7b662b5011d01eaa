#!/usr/bin/env bash
# run_fuzz.sh FUZZER SEED_CORPUS WORK_DIR SECONDS: a bounded libFuzzer run from the seeds.
set -euo pipefail
fuzzer=$1 seeds=$2 work=$3 seconds=$4
rm -rf "$work" && mkdir -p "$work/corpus" "$work/artifacts"
cp "$seeds"/* "$work/corpus/"
"$fuzzer" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=1024 -timeout=10 \
  -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$work/corpus" 2>&1 | tail -n 25
status=${PIPESTATUS[0]}
if ls "$work/artifacts/"* >/dev/null 2>&1; then
  echo "fuzz: crash inputs kept in $work/artifacts/" >&2
  exit 1
fi
exit "$status"
