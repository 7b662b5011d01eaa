#!/usr/bin/env bash
# check_examples.sh CUTPILOT (run from the source tree): `cutpilot check` accepts every plan
# in plans/examples/ with exit 0, its one-line summary and nothing on stderr (the database
# passwords and DNS secrets the examples name are set, as they would be for a run).
set -u
bin=$1
export OLD_DB_PASSWORD=x NEW_DB_PASSWORD=x PAYROLL_DB_PASSWORD=x PAYROLL_DNS_SECRET=eA== SHOP_DNS_SECRET=eA==
count=0
for plan in plans/examples/*.toml; do
  err=$("$bin" check "$plan" 2>&1 >/dev/null)
  code=$?
  out=$("$bin" check "$plan" 2>/dev/null)
  if [ "$code" != 0 ] || [ -n "$err" ]; then echo "$plan: exit $code: $err" >&2; exit 1; fi
  case "$out" in "$plan: ok: plan "*) ;; *) echo "$plan: unexpected summary '$out'" >&2; exit 1 ;; esac
  count=$((count + 1))
done
if [ "$count" -lt 5 ]; then echo "expected at least 5 example plans, found $count" >&2; exit 1; fi
echo "ok: $count example plans pass cutpilot check"
