#!/usr/bin/env bash
# plan_output.sh CUTPILOT GOLDEN (run from the source tree): `cutpilot plan` on the
# docker-volumes example prints GOLDEN exactly and exits 0; on a broken plan it exits 1
# with the error at its line and column and prints no plan.
set -u
bin=$1 golden=$2
out=$("$bin" plan plans/examples/docker-volumes.toml 2>&1)
code=$?
if [ "$code" != 0 ]; then echo "expected exit 0, got $code: $out" >&2; exit 1; fi
if ! diff -u "$golden" <(printf '%s\n' "$out"); then echo "output differs from $golden" >&2; exit 1; fi

broken=$(mktemp --suffix=.toml)
trap 'rm -f "$broken"' EXIT
printf '[plan]\nname = "x"\n[hosts.a]\n[[steps]]\nid = "s"\non = "b"\nwait = "1s"\n' >"$broken"
err=$("$bin" plan "$broken" 2>&1 >/dev/null)
code=$?
stdout=$("$bin" plan "$broken" 2>/dev/null)
if [ "$code" != 1 ]; then echo "broken plan: expected exit 1, got $code" >&2; exit 1; fi
expected="$broken:6:6: error: unknown host 'b' in 'on' of step 's'"
if [ "$err" != "$expected" ]; then echo "broken plan: got '$err', expected '$expected'" >&2; exit 1; fi
if [ -n "$stdout" ]; then echo "broken plan: printed a plan: $stdout" >&2; exit 1; fi
usage=$("$bin" plan 2>&1)
if [ $? != 2 ]; then echo "no argument: expected exit 2: $usage" >&2; exit 1; fi
echo "ok: plan output matches $golden; a broken plan fails at 6:6"
