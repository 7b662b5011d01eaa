#!/usr/bin/env bash
# `cutpilot demo --headless` starts the lab, reaches both hosts through their agents,
# names how to reach the lab, and stops it again.
set -u
out=$("$1" demo --headless </dev/null 2>&1)
status=$?
echo "$out"
[ "$status" = 0 ] || { echo "demo exited $status" >&2; exit 1; }
case "$out" in *"2 of 2 hosts ready"*) ;; *) echo "demo did not reach both lab hosts" >&2; exit 1 ;; esac
dir=$(printf '%s\n' "$out" | sed -n 's/^  export CUTPILOT_LAB=//p')
[ -n "$dir" ] || { echo "demo did not name its lab dir" >&2; exit 1; }
[ ! -e "$dir" ] || { echo "demo left $dir behind" >&2; exit 1; }
if grep -lzs "CUTPILOT_LAB_DIR=$dir" /proc/[0-9]*/environ 2>/dev/null | grep -v "/proc/$$/"; then
  echo "demo left processes of $dir running" >&2; exit 1
fi
echo "ok: demo started and stopped $dir"
