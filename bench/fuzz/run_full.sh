#!/usr/bin/env bash
# R10 (issue 8), the long run: schemathesis over /openapi.json with 500 examples per operation
# (examples, coverage and fuzzing phases; checks: no 5xx, status codes, content types and
# bodies as declared, schema-invalid input refused) against a live gunicorn on PostgreSQL and
# Redis (loopback, the test fixtures' servers), plus the hostile-values test (deep nesting,
# huge numbers, NUL and surrogates in every parameter of every operation) on SQLite and
# PostgreSQL. The suite runs the same tests with 25 examples.
#
#   bench/fuzz/run_full.sh [EXAMPLES]     default 500; TEST_FUZZ_SEED (4), TEST_FUZZ_TIMEOUT (s)
#
# Reports go to $FUZZ_OUT (default /tmp/tengo-fuzz): schemathesis.txt (its full output) and
# pytest.txt. Record the summary in bench/RESULTS.md, section "API fuzz (issue 8, R10)".
set -uo pipefail
cd "$(dirname "$0")/../.."
examples="${1:-${TEST_FUZZ_EXAMPLES:-500}}"
out="${FUZZ_OUT:-/tmp/tengo-fuzz}"
mkdir -p "$out"
export TEST_FUZZ_EXAMPLES="$examples"
export TEST_FUZZ_TIMEOUT="${TEST_FUZZ_TIMEOUT:-7200}"
export TEST_FUZZ_REPORT="$out/schemathesis.txt"
rm -f "$TEST_FUZZ_REPORT"
started=$(date +%s)
python -m pytest --basetemp="$out/pt" -q -p no:cacheprovider --timeout "$((TEST_FUZZ_TIMEOUT + 120))" \
  tests/test_api_fuzz.py 2>&1 | tee "$out/pytest.txt"
status=${PIPESTATUS[0]}
echo "examples per operation: $examples; elapsed: $(( $(date +%s) - started )) s; exit: $status"
echo "schemathesis summary:"
grep -E -A2 "^ *(✅|❌|⏭)? *(Coverage|Fuzzing|Stateful|Examples)|Test cases:|Seed:|^Failures" "$TEST_FUZZ_REPORT" | tail -30
sed -n '/requests per operation/,$p' "$TEST_FUZZ_REPORT"
exit "$status"
