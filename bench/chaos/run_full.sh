#!/usr/bin/env bash
# The fault battery of issue 8 at the issue's full sizes (tests/chaos with CHAOS_FULL=1).
#
#   bench/chaos/run_full.sh                 # every test, about 60-75 minutes on 2 cores
#   bench/chaos/run_full.sh -k r1           # one of them (any pytest arguments)
#
# Needs what the fast battery needs (Redis and PostgreSQL on 127.0.0.1, redis-server and
# the PostgreSQL server binaries for the private servers, root for R7's network namespace).
# --runxfail: a known failure reports its real error instead of "xfailed". Each test prints
# one "CHAOS-RESULT {json}" line; they are also collected in bench/chaos/results-<date>.jsonl.
set -uo pipefail
cd "$(dirname "$0")/../.."
stamp=$(date -u +%Y%m%dT%H%M%SZ)
export CHAOS_FULL=1
export CHAOS_RESULTS="bench/chaos/results-${stamp}.jsonl"
python -m pytest tests/chaos -p no:cacheprovider -s -rfExX --runxfail "$@" \
  2>&1 | tee "bench/chaos/run-${stamp}.log"
echo "results: ${CHAOS_RESULTS}; log: bench/chaos/run-${stamp}.log"
