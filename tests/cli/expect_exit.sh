#!/usr/bin/env bash
# expect_exit.sh CODE TEXT COMMAND...: COMMAND must exit with CODE and print TEXT on stderr.
code=$1 text=$2
shift 2
err=$("$@" 2>&1 >/dev/null)
got=$?
if [ "$got" != "$code" ]; then echo "expected exit $code, got $got: $err" >&2; exit 1; fi
case "$err" in *"$text"*) ;; *) echo "stderr lacks '$text': $err" >&2; exit 1 ;; esac
echo "ok: exit $got, stderr names '$text'"
