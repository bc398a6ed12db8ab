"""``GET /metrics``: Prometheus text format, derived from the database at scrape time.

The web process executes no runs, and gunicorn runs several web processes, so
in-process counters would each see a slice. The figures come from the database
(the source of truth) through a custom collector, cached for a few seconds, and each
costs a bounded query (:mod:`tengo_jobs.store.queries`): they cover the runs created in
the last 24 hours (a sliding window, so they are gauges, not counters), and counts stop
at 100,000:

- ``tengo_events_received_24h``: events stored;
- ``tengo_runs_started_24h`` / ``tengo_runs_completed_24h`` / ``tengo_runs_failed_24h`` by
  function, and ``tengo_runs`` by function and status;
- ``tengo_step_duration_seconds``: histogram of finished step durations by function;
- ``tengo_runs_skipped_24h`` by function and reason: events that started no run
  (``rate_limit``, ``idempotency``, ``singleton``) or were folded into another run
  (``debounced``, ``batched``);
- ``tengo_runs_due``: runs due now that no worker holds (the real backlog), and
  ``tengo_broker_queue_depth``: messages waiting in the broker queue;
- ``tengo_runs_waiting_for_capacity`` by function and ``tengo_concurrency_slots_in_use`` by
  function and limit (functions with a ``concurrency`` limit).

Beside them, Inngest's names (its self-hosted Prometheus endpoint), so a dashboard built
for Inngest reads these:

- ``inngest_function_run_scheduled_total`` / ``inngest_function_run_started_total`` by
  ``fn``, ``inngest_function_run_ended_total`` by ``fn`` and ``status`` (``completed``,
  ``failed``, ``cancelled``) and ``inngest_step_output_bytes_total`` by ``fn`` (bytes of
  the stored step outputs of ended runs, counted when the run ends): real counters, since
  the database was created, read at every scrape without the cache
  (:meth:`~tengo_jobs.store.queries.Queries.run_totals`: a trigger keeps per-function
  totals of ended runs in the transaction that ends each run, plus the unfinished runs
  through the status index). Every gunicorn worker, and every scrape, reads the same
  committed rows, so the numbers agree between workers and never go down, across pruning
  too;
- ``inngest_steps_scheduled``: runs due now that no worker holds; ``inngest_steps_running``:
  runs a worker holds now (a live lease);
- ``tengo_scheduler_lag_seconds``: how long the oldest due, unheld run has waited, and
  ``tengo_run_start_lag_seconds``: histogram of creation-to-start delays by function.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, cast

from flask import Blueprint, Response, current_app
from flask.typing import ResponseReturnValue
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)

from .auth import require_api

if TYPE_CHECKING:
    from prometheus_client import Metric

    from ...runtime import Runtime

log = logging.getLogger(__name__)
bp = Blueprint("tengo_metrics", __name__)

STEP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
CACHE_SECONDS = 5.0


class DatabaseCollector:
    """Collects the figures above from the database; cached for ``CACHE_SECONDS``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Any]] | None = None

    def collect(self) -> list[Metric]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > CACHE_SECONDS:
                self._cached = (time.monotonic(), self._measure_gauges())
            gauges = list(self._cached[1])
        return self._counters() + gauges

    def _measure(self) -> list[Any]:
        """Every family, read now (tests)."""
        return self._counters() + self._measure_gauges()

    def _counters(self) -> list[Any]:
        """Inngest's ``*_total`` counters: read at every scrape (a cached value could be
        older than one another worker just served, and a counter must not go down)."""
        scheduled = CounterMetricFamily("inngest_function_run_scheduled_total",
                                        "Function runs scheduled.", labels=["fn"])
        started = CounterMetricFamily("inngest_function_run_started_total",
                                      "Function runs started.", labels=["fn"])
        ended = CounterMetricFamily("inngest_function_run_ended_total",
                                    "Function runs ended, by status.", labels=["fn", "status"])
        output = CounterMetricFamily("inngest_step_output_bytes_total",
                                     "Bytes of step outputs stored (counted when the run ends).",
                                     labels=["fn"])
        for fn_id, counts in sorted(self.runtime.store.queries.run_totals().items()):
            scheduled.add_metric([fn_id], counts["scheduled"])
            started.add_metric([fn_id], counts["started"])
            for status, n in sorted(counts["ended"].items()):
                if n:
                    ended.add_metric([fn_id, status], n)
            output.add_metric([fn_id], counts["output_bytes"])
        return [scheduled, started, ended, output]

    def _measure_gauges(self) -> list[Any]:
        now = self.runtime.now()
        queries = self.runtime.store.queries
        events = GaugeMetricFamily("tengo_events_received_24h",
                                   "Events stored in the last 24 hours.")
        events.add_metric([], queries.recent_events(now=now))
        started = GaugeMetricFamily("tengo_runs_started_24h", "Runs started in the last 24 hours.",
                                    labels=["function"])
        completed = GaugeMetricFamily("tengo_runs_completed_24h",
                                      "Runs started in the last 24 hours and completed.",
                                      labels=["function"])
        failed = GaugeMetricFamily("tengo_runs_failed_24h",
                                   "Runs started in the last 24 hours and failed.",
                                   labels=["function"])
        by_status = GaugeMetricFamily("tengo_runs", "Runs of the last 24 hours by function and status.",
                                      labels=["function", "status"])
        for fn_id, counts in sorted(queries.recent_counts(now=now).items()):
            started.add_metric([fn_id], sum(counts.values()))
            completed.add_metric([fn_id], counts.get("completed", 0))
            failed.add_metric([fn_id], counts.get("failed", 0))
            for status, n in sorted(counts.items()):
                by_status.add_metric([fn_id, status], n)
        due = GaugeMetricFamily("tengo_runs_due", "Runs due now that no worker holds.")
        due.add_metric([], queries.due_count(now=now))
        skipped = GaugeMetricFamily(
            "tengo_runs_skipped_24h", "Events of the last 24 hours that started no run of a "
            "function (reason rate_limit, idempotency, singleton) or were folded into another "
            "run (debounced, batched), by function and reason.", labels=["function", "reason"])
        for (fn_id, reason), n in sorted(queries.skipped_counts(now=now).items()):
            skipped.add_metric([fn_id, reason], n)
        metrics = [events, started, completed, failed, by_status, due, skipped,
                   self._step_histogram(now), *self._capacity(now), *self._inngest(now)]
        try:
            depth = self.runtime.broker_adapter.queue_depth(self.runtime.settings.queue_name)
        except Exception as exc:  # noqa: BLE001 - the broker being down is not a scrape error
            log.warning("broker queue depth unavailable: %s", type(exc).__name__)
            depth = None
        if depth is not None:
            queue = GaugeMetricFamily("tengo_broker_queue_depth", "Messages waiting in the broker.",
                                      labels=["queue"])
            queue.add_metric([self.runtime.settings.queue_name], depth)
            metrics.append(queue)
        return metrics

    def _inngest(self, now: int) -> list[Any]:
        """The gauges under Inngest's names, and the scheduler's lag (the counters:
        :meth:`_counters`)."""
        queries = self.runtime.store.queries
        steps_scheduled = GaugeMetricFamily("inngest_steps_scheduled",
                                            "Runs due now that no worker holds.")
        steps_scheduled.add_metric([], queries.due_count(now=now))
        running = GaugeMetricFamily("inngest_steps_running", "Runs a worker holds now.")
        running.add_metric([], queries.running_count(now=now))
        lag = GaugeMetricFamily("tengo_scheduler_lag_seconds",
                                "How long the oldest run due now and held by no worker has waited.")
        lag.add_metric([], queries.scheduler_lag_ms(now=now) / 1000)
        start_lag = HistogramMetricFamily(
            "tengo_run_start_lag_seconds", "Delay from a run's creation to its start "
            "(runs of the last 24 hours).", labels=["function"])
        for fn_id, count, total_ms, *cumulative in queries.start_lags(
                now=now, buckets_ms=tuple(int(b * 1000) for b in STEP_BUCKETS_S)):
            buckets = [(str(b), int(c or 0)) for b, c in zip(STEP_BUCKETS_S, cumulative)]
            buckets.append(("+Inf", int(count)))
            start_lag.add_metric([fn_id], buckets, (total_ms or 0) / 1000)
        return [steps_scheduled, running, lag, start_lag]

    def _capacity(self, now: int) -> list[Any]:
        """Per function with a concurrency limit: runs waiting for a slot, slots in use."""
        waiting = GaugeMetricFamily("tengo_runs_waiting_for_capacity",
                                    "Runs waiting for a concurrency slot.", labels=["function"])
        in_use = GaugeMetricFamily("tengo_concurrency_slots_in_use",
                                   "Concurrency slots held by executing runs, per limit.",
                                   labels=["function", "limit"])
        for fn in sorted(self.runtime.registry.all(), key=lambda f: f.id):
            if fn.capacity is None or not fn.capacity.concurrency:
                continue
            limits = self.runtime.control.live_limits(fn, now=now, top=0)
            # a run waits on one limit at a time: the sum counts each waiting run once
            waiting.add_metric([fn.id], sum(limit["waiting"] for limit in limits))
            for limit in limits:
                in_use.add_metric([fn.id, limit["key"] or "function"], limit["slots_in_use"])
        return [waiting, in_use]

    def _step_histogram(self, now: int) -> HistogramMetricFamily:
        hist = HistogramMetricFamily("tengo_step_duration_seconds",
                                     "Duration of finished steps (runs of the last 24 hours).",
                                     labels=["function"])
        rows = self.runtime.store.queries.step_durations(
            now=now, buckets_ms=tuple(int(b * 1000) for b in STEP_BUCKETS_S))
        for fn_id, count, total_ms, *cumulative in rows:
            buckets = [(str(b), int(c or 0)) for b, c in zip(STEP_BUCKETS_S, cumulative)]
            buckets.append(("+Inf", int(count)))
            hist.add_metric([fn_id], buckets, (total_ms or 0) / 1000)
        return hist


@bp.get("/metrics")
@require_api
def metrics() -> ResponseReturnValue:
    registry = current_app.extensions.get("tengo_jobs_metrics")
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DatabaseCollector(cast("Runtime", current_app.extensions["tengo_jobs"])))
        current_app.extensions["tengo_jobs_metrics"] = registry
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4; charset=utf-8")
