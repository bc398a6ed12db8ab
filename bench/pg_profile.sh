#!/usr/bin/env bash
# Where PostgreSQL's time goes in W4 runs: the peers' harness's own cluster started with
# pg_stat_statements, one `tengo-pg-1x8` throughput pass (3 x 2,000 runs), then per-statement
# calls, planning vs execution time, buffers and WAL per call, plus commits and WAL per run.
#   BENCH_PEERS_WORK=/tmp/bench-peers bash bench/pg_profile.sh > profile.txt
# Needs the harness's venv ($BENCH_PEERS_WORK/venv, see ../shared/bench-peers/README.md)
# with this checkout installed in it (pip install -e .).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS:-$HERE/../../shared/bench-peers}
WORK=${BENCH_PEERS_WORK:-/tmp/bench-peers}
PY=$WORK/venv/bin/python
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
PGDIR=$WORK/pg
export BENCH_PEERS_WORK=$WORK

(cd "$PEERS" && $PY pgctl.py stop) >/dev/null 2>&1 || true
(cd "$PEERS" && $PY pgctl.py start && $PY pgctl.py stop) >/dev/null  # initdb if needed
runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDIR" -l "$WORK/pg.log" -w -t 60 -o \
  "-c listen_addresses=127.0.0.1 -p 55433 -c unix_socket_directories=$PGDIR \
   -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all \
   -c pg_stat_statements.track_planning=on -c track_io_timing=on" start >/dev/null
trap 'runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDIR" -m fast -w stop >/dev/null' EXIT
PSQL="psql -h 127.0.0.1 -p 55433 -U postgres -X -q"

$PSQL -d postgres -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
$PSQL -d postgres -c "SELECT pg_stat_statements_reset(); SELECT pg_stat_reset_shared('wal')" >/dev/null
(cd "$PEERS" && $PY run.py tengo-pg-1x8 --skip-latency | tail -1) > "$WORK/profile-run.json"
RUNS=$($PY -c "import json,sys; d=json.load(open('$WORK/profile-run.json')); print(d['throughput']['repeats_done']*d['throughput'].get('n', 2000))" 2>/dev/null || echo 6000)
echo "# $(date -u +%FT%TZ) runs measured: $RUNS"
$PY -c "import json; d=json.load(open('$WORK/profile-run.json')); t=d['throughput']; print('# runs/s', t.get('median_runs_per_s', t), '| cpu', d.get('cpu_ms_per_run'))" || true
$PSQL -d postgres -P pager=off <<SQL
\echo '## per statement (top 12 by total time)'
SELECT round(calls::numeric / $RUNS, 2) AS calls_per_run,
       round((total_exec_time / calls)::numeric, 3) AS exec_ms_per_call,
       plans, round((total_plan_time / greatest(plans, 1))::numeric, 3) AS plan_ms_per_plan,
       round(((shared_blks_hit + shared_blks_read)::numeric / calls), 1) AS buffers_per_call,
       round((wal_bytes / calls)::numeric, 0) AS wal_bytes_per_call,
       left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS statement
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'bench_tengo')
ORDER BY total_exec_time + total_plan_time DESC LIMIT 12;
\echo '## per run'
\\c bench_tengo
SELECT round(xact_commit::numeric / $RUNS, 2) AS commits_per_run,
       round(tup_inserted::numeric / $RUNS, 2) AS rows_inserted_per_run,
       round(tup_updated::numeric / $RUNS, 2) AS rows_updated_per_run
FROM pg_stat_database WHERE datname = 'bench_tengo';
SELECT round(wal_bytes::numeric / $RUNS, 0) AS wal_bytes_per_run, wal_sync FROM pg_stat_wal;
SELECT relname, n_tup_upd, n_tup_hot_upd, n_tup_ins FROM pg_stat_user_tables
WHERE relname LIKE 'tj_%' ORDER BY relname;
SQL
