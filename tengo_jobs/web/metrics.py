"""``GET /metrics``: Prometheus text format, derived from the database at scrape time.

The web process executes no runs, and gunicorn runs several web processes, so
in-process counters would each see a slice. The figures come from the database
(the source of truth) through a custom collector instead, cached for a few
seconds so frequent scrapes cost one set of aggregate queries:

- ``tengo_events_received_total``: events stored;
- ``tengo_runs_started_total`` / ``tengo_runs_completed_total`` /
  ``tengo_runs_failed_total`` by function, and ``tengo_runs`` by function and status;
- ``tengo_step_duration_seconds``: histogram of finished step durations by function;
- ``tengo_runs_due``: runs due now that no worker holds (the real backlog), and
  ``tengo_broker_queue_depth``: messages waiting in the broker queue.
"""

from __future__ import annotations

import logging
import threading
import time

import peewee as pw
from flask import Blueprint, Response, current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)

from ..models import Event, Run, RunStatus, Step
from .auth import require_dashboard

log = logging.getLogger(__name__)
bp = Blueprint("tengo_metrics", __name__)

STEP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
CACHE_SECONDS = 5.0


def broker_queue_depth(broker, queue_name: str) -> int | None:
    """Messages waiting in ``queue_name`` (Redis list length or stub queue size)."""
    client = getattr(broker, "client", None)
    if client is not None:
        namespace = getattr(broker, "namespace", "dramatiq")
        return int(client.llen(f"{namespace}:{queue_name}"))
    queues = getattr(broker, "queues", None)
    if queues is not None and queue_name in queues:
        return queues[queue_name].qsize()
    return None


class DatabaseCollector:
    """Collects the figures above from the database; cached for ``CACHE_SECONDS``."""

    def __init__(self, runtime):
        self.runtime = runtime
        self._lock = threading.Lock()
        self._cached: tuple[float, list] | None = None

    def collect(self):
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > CACHE_SECONDS:
                self._cached = (time.monotonic(), self._measure())
            return list(self._cached[1])

    def _measure(self) -> list:
        now = self.runtime.now()
        events = CounterMetricFamily("tengo_events_received", "Events stored by the intake.")
        events.add_metric([], Event.select().count())

        started = CounterMetricFamily("tengo_runs_started", "Runs started.", labels=["function"])
        completed = CounterMetricFamily("tengo_runs_completed", "Runs completed.",
                                        labels=["function"])
        failed = CounterMetricFamily("tengo_runs_failed", "Runs failed.", labels=["function"])
        by_status = GaugeMetricFamily("tengo_runs", "Runs by function and status.",
                                      labels=["function", "status"])
        totals: dict[str, dict[str, int]] = {}
        for fn_id, status, n in (Run.select(Run.function_id, Run.status, pw.fn.COUNT(Run.id))
                                 .group_by(Run.function_id, Run.status).tuples()):
            totals.setdefault(fn_id, {})[RunStatus(status).value] = n
        for fn_id, counts in sorted(totals.items()):
            started.add_metric([fn_id], sum(counts.values()))
            completed.add_metric([fn_id], counts.get("completed", 0))
            failed.add_metric([fn_id], counts.get("failed", 0))
            for status, n in sorted(counts.items()):
                by_status.add_metric([fn_id, status], n)

        due = GaugeMetricFamily("tengo_runs_due", "Runs due now that no worker holds.")
        due.add_metric([], Run.select().where(
            Run.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value])
            & (Run.wake_at <= now)
            & (Run.lease_expires_at.is_null() | (Run.lease_expires_at < now))).count())
        metrics = [events, started, completed, failed, by_status, due, self._step_histogram()]
        try:
            depth = broker_queue_depth(self.runtime.broker, self.runtime.settings.queue_name)
        except Exception as exc:  # noqa: BLE001 - the broker being down is not a scrape error
            log.warning("broker queue depth unavailable: %s", type(exc).__name__)
            depth = None
        if depth is not None:
            queue = GaugeMetricFamily("tengo_broker_queue_depth", "Messages waiting in the broker.",
                                      labels=["queue"])
            queue.add_metric([self.runtime.settings.queue_name], depth)
            metrics.append(queue)
        return metrics

    def _step_histogram(self) -> HistogramMetricFamily:
        """One aggregate query: per function, how many steps finished within each bucket."""
        duration = Step.ended_at - Step.started_at
        columns = [pw.fn.SUM(pw.Case(None, [(duration <= int(b * 1000), 1)], 0))
                   for b in STEP_BUCKETS_S]
        query = (Step.select(Run.function_id, pw.fn.COUNT(Step.run_id), pw.fn.SUM(duration),
                             *columns)
                 .join(Run, on=(Run.id == Step.run_id))
                 .where(Step.ended_at.is_null(False) & Step.started_at.is_null(False))
                 .group_by(Run.function_id).tuples())
        hist = HistogramMetricFamily("tengo_step_duration_seconds", "Duration of finished steps.",
                                     labels=["function"])
        for fn_id, count, total_ms, *cumulative in query:
            buckets = [(str(b), int(c or 0)) for b, c in zip(STEP_BUCKETS_S, cumulative)]
            buckets.append(("+Inf", int(count)))
            hist.add_metric([fn_id], buckets, (total_ms or 0) / 1000)
        return hist


@bp.get("/metrics")
@require_dashboard
def metrics():
    registry = current_app.extensions.get("tengo_jobs_metrics")
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DatabaseCollector(current_app.extensions["tengo_jobs"]))
        current_app.extensions["tengo_jobs_metrics"] = registry
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4; charset=utf-8")
