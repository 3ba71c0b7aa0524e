"""Process-wide counters, fed from where things happen and exported by every app's `/metrics` (app/web/metrics.py).

Workers (every job event passes `job_event`), GitHub clients (a response hook) and the sandbox have no web app
at hand, and may run in a `honk worker` that serves no HTTP at all, so their figures live here, in one object per
process, below every package that feeds them. They are cheap (a dict lookup and an add) and never raise.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from typing import Any

import httpx
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import Collector

log = logging.getLogger("honk.metrics")

# Sandboxed commands run from milliseconds (`true`, `cat`) to HONK_COMMAND_TIMEOUT (a test suite).
COMMAND_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# A job's attempt runs from a second (an ignored command) to an hour and more (a long agent run with its tests).
JOB_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
# From when a job may run to a worker claiming it: the poll interval when the fleet keeps up, minutes when not.
WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
TOKEN_TYPES = {"input_tokens": "input", "output_tokens": "output", "cache_read_input_tokens": "cache_read",
               "cache_creation_input_tokens": "cache_write"}
_HTTP_STATUS = re.compile(r"HTTP (\d{3})\b")


class ProcessMetrics:
    def __init__(self) -> None:
        self.github_errors = Counter("honk_github_api_errors", "GitHub API responses with status >= 400 "
                                     "received by this process (each attempt of a retried call counts)",
                                     ["status"], registry=None)
        self.anthropic_errors = Counter("honk_anthropic_api_errors", "failed Anthropic Messages API calls in "
                                        "this process's runs, by HTTP status (\"connection\" when there was "
                                        "none); retried attempts and the final failure each count",
                                        ["status"], registry=None)
        self.sandbox_commands = Counter("honk_sandbox_commands", "bash tool commands the model ran in the "
                                        "sandbox in this process, by outcome (error: failed or timed out)",
                                        ["outcome"], registry=None)
        self.sandbox_seconds = Histogram("honk_sandbox_command_seconds", "wall time of the model's bash tool "
                                         "commands in this process", buckets=COMMAND_BUCKETS, registry=None)
        self.model_tokens = Counter("honk_worker_model_tokens", "tokens of model responses received by the "
                                    "workers in this process (the agent's and the judge's), by model and type "
                                    "(input, output, cache_read, cache_write); honk_model_tokens_total is the "
                                    "database-wide total of the agent's", ["model", "type"], registry=None)
        self.model_cost = Counter("honk_worker_model_cost_usd", "cost of model responses received by the "
                                  "workers in this process (the agent's and the judge's), by model; "
                                  "honk_model_cost_usd_total is the database-wide total of the agent's",
                                  ["model"], registry=None)
        # Jobs as this process's worker runs them (`honk worker --metrics-port` serves these, for a fleet).
        self.jobs_running = Gauge("honk_worker_jobs_running", "jobs this process's worker is running, by kind",
                                  ["kind"], registry=None)
        self.job_seconds = Histogram("honk_worker_job_seconds", "wall time of each attempt this process's worker "
                                     "ran, by kind and outcome (succeeded, failed, retry_scheduled, cancelled, "
                                     "released, lease_lost)", ["kind", "outcome"], buckets=JOB_BUCKETS,
                                     registry=None)
        self.queue_wait = Histogram("honk_worker_queue_wait_seconds", "time from a job being ready to run (queued, "
                                    "or its retry due) to this process's worker claiming it, by kind", ["kind"],
                                    buckets=WAIT_BUCKETS, registry=None)
        # GitHub's rate limits, as app/github/pacing.py meets them: pauses begun, and the seconds requests waited.
        self.github_pauses = Counter("honk_github_rate_limit_pauses", "times this process paused an installation's "
                                     "(or the App's) GitHub requests for a rate limit, by limit (secondary, "
                                     "primary)", ["limit"], registry=None)
        self.github_waited = Counter("honk_github_rate_limit_wait_seconds", "seconds GitHub requests in this process "
                                     "waited before going out, by reason (secondary, primary, content: the pacing "
                                     "of content-creating requests)", ["reason"], registry=None)
        self.collectors: tuple[Collector, ...] = (self.github_errors, self.anthropic_errors, self.sandbox_commands,
                                                  self.sandbox_seconds, self.model_tokens, self.model_cost,
                                                  self.jobs_running, self.job_seconds, self.queue_wait,
                                                  self.github_pauses, self.github_waited)
        # model.response events do not name the model; agent.start does, once per run of a job.
        self._job_models: OrderedDict[int, str] = OrderedDict()
        self._lock = threading.Lock()

    def job_event(self, job_id: int, kind: str, data: dict[str, Any]) -> None:
        """Map one audit event to metrics. Called for every event of every job: keep it cheap and never raise."""
        try:
            if kind == "tool.result":
                if data.get("name") == "bash":
                    self.sandbox_commands.labels("error" if data.get("is_error") else "ok").inc()
                    self.sandbox_seconds.observe(float(data.get("duration_s") or 0.0))
            elif kind == "model.response":
                model = data.get("model") or self._job_models.get(job_id, "unknown")
                self._count_usage(str(model), data)
            elif kind == "judge.verdict" and data.get("model"):  # the judge's calls, under the judge's model
                self._count_usage(str(data["model"]), data)
            elif kind == "model.retry":
                self.anthropic_errors.labels(_api_status(data.get("error"))).inc()
            elif kind == "agent.stop":
                if data.get("stop") == "api_error":  # the failure that ended the run (never a model.retry)
                    self.anthropic_errors.labels(_api_status(data.get("error"))).inc()
            elif kind == "agent.start" and isinstance(data.get("model"), str):
                with self._lock:
                    self._job_models[job_id] = data["model"]
                    self._job_models.move_to_end(job_id)
                    while len(self._job_models) > 1024:
                        self._job_models.popitem(last=False)
        except (TypeError, ValueError, AttributeError) as exc:  # an odd event must never break a job
            log.debug("job=%s event %s not counted: %s", job_id, kind, exc)

    def _count_usage(self, model: str, data: dict[str, Any]) -> None:
        usage = data.get("usage") or {}
        for key, kind_label in TOKEN_TYPES.items():
            if tokens := int(usage.get(key) or 0):
                self.model_tokens.labels(model, kind_label).inc(tokens)
        self.model_cost.labels(model).inc(float(data.get("cost_usd") or 0.0))

    def job_claimed(self, kind: str, waited: float) -> None:
        """The worker took a job that had been ready for `waited` seconds."""
        self.queue_wait.labels(kind).observe(max(waited, 0.0))
        self.jobs_running.labels(kind).inc()

    def job_ended(self, kind: str, outcome: str, seconds: float) -> None:
        """An attempt the worker ran ended, `seconds` after it started."""
        self.jobs_running.labels(kind).dec()
        self.job_seconds.labels(kind, outcome).observe(max(seconds, 0.0))

    async def github_response(self, response: httpx.Response) -> None:
        """httpx response hook on every githubkit client (app/github/client.py)."""
        if response.status_code >= 400:
            self.github_errors.labels(str(response.status_code)).inc()

    def github_rate_limit_paused(self, limit: str) -> None:
        """An installation's (or the App's) GitHub requests were paused for a rate limit."""
        self.github_pauses.labels(limit).inc()

    def github_rate_limit_waited(self, reason: str, seconds: float) -> None:
        """A GitHub request waited `seconds` before going out (a rate limit, or the pacing of content)."""
        self.github_waited.labels(reason).inc(max(seconds, 0.0))


PROCESS = ProcessMetrics()


def job_event(job_id: int, kind: str, data: dict[str, Any]) -> None:
    PROCESS.job_event(job_id, kind, data)


def _api_status(error: object) -> str:
    match = _HTTP_STATUS.search(error) if isinstance(error, str) else None
    if match:
        return match.group(1)
    return "connection" if isinstance(error, str) and error.startswith("connection error") else "other"
