"""Running a cohort on Dask: which studies to run, the cluster, and the ledger kept as they finish.

The local cluster listens on the loopback address only (scheduler, workers, nannies, dashboard): a
Dask scheduler runs whatever code it is sent, so nothing on the network may reach it. A running
cluster is reached with ``--scheduler``; ``tls://`` with certificates goes through
``distributed.security.Security``. The client submits every study as one task and records each in
the ledger as it completes (``as_completed``): a worker that dies mid-study has its tasks run again
elsewhere by the scheduler, and the ledger, written here only, keeps one row per study.
"""
from __future__ import annotations

import contextlib
import itertools
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..errors import SpineAnalysisError
from .ledger import Ledger
from .models import models_digest, task_models
from .sources import Study, fingerprint

LOOPBACK = "127.0.0.1"
#: Tasks kept on the cluster at a time (at least; four per worker thread when that is more).
IN_FLIGHT = 1000


@dataclass(frozen=True)
class ClusterOptions:
    """Where the studies run: a local cluster of ``workers`` processes, or the scheduler at ``scheduler``."""

    workers: int = 1
    scheduler: str | None = None
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    dashboard_port: int = 8787


def security(options: ClusterOptions):
    """The TLS settings for ``--scheduler tls://``: the files given, else Dask's own configuration."""
    from distributed.security import Security

    files = (options.tls_ca_file, options.tls_cert, options.tls_key)
    if not any(files):
        if not (options.scheduler or "").startswith("tls://"):
            return None
        security = Security()   # Dask's configuration: distributed.comm.tls.ca-file, .client.cert, .client.key
        if not (security.tls_ca_file and security.tls_client_cert):
            raise SpineAnalysisError(f"{options.scheduler} needs TLS certificates: give --tls-ca-file, --tls-cert and "
                                     "--tls-key (or set distributed.comm.tls in Dask's configuration)")
        return security
    if not all(files):
        raise SpineAnalysisError("TLS needs all three of --tls-ca-file, --tls-cert and --tls-key")
    if not (options.scheduler or "").startswith("tls://"):
        raise SpineAnalysisError(f"--tls-ca-file, --tls-cert and --tls-key go with a tls:// scheduler, not "
                                 f"{options.scheduler}")
    for path in files:
        if not Path(path).is_file():
            raise SpineAnalysisError(f"{path} not found")
    return Security(tls_ca_file=options.tls_ca_file, tls_client_cert=options.tls_cert,
                    tls_client_key=options.tls_key, require_encryption=True)


def _unprotected(address: str) -> bool:
    """A plain-TCP scheduler off this machine: its traffic is neither encrypted nor authenticated."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return not address.startswith("tls://") and host not in ("127.0.0.1", "localhost", "::1")


@contextlib.contextmanager
def _workers_leave_ctrl_c_to_us():
    """Worker processes started here ignore SIGINT (Python keeps an ignored SIGINT ignored): Ctrl-C at a
    terminal reaches them too, and would end each with a traceback; this process cancels the tasks and
    closes the cluster instead."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def connect(options: ClusterOptions, say=print):
    """A Dask client and the local cluster it owns (None with ``--scheduler``); says where the dashboard is."""
    from distributed import Client, LocalCluster

    if options.scheduler:
        if _unprotected(options.scheduler):
            print(f"spine-analysis: warning: {options.scheduler} is plain TCP: anyone who can reach it can run code "
                  "on the cluster and read the studies; use tls:// with --tls-ca-file/--tls-cert/--tls-key on "
                  "untrusted networks", file=sys.stderr)
        try:
            client = Client(options.scheduler, security=security(options), timeout="30s")
        except Exception as exc:   # refused, timed out, or something that is no Dask scheduler answered
            raise SpineAnalysisError(f"cannot reach the Dask scheduler at {options.scheduler} "
                                     f"({type(exc).__name__}: {str(exc)[:200]})") from None
        cluster = None
    else:
        with _workers_leave_ctrl_c_to_us():
            cluster = LocalCluster(n_workers=options.workers, threads_per_worker=1, processes=True, host=LOOPBACK,
                                   dashboard_address=f"{LOOPBACK}:{options.dashboard_port}")
        client = Client(cluster)
    say(f"Dask dashboard: {client.dashboard_link}")
    return client, cluster


class Progress:
    """Studies done and failed, the rate and the time left, on one stderr line every few seconds."""

    def __init__(self, total: int, every_s: float = 2.0, stream=None):
        self.total, self.every_s, self.stream = total, every_s, stream or sys.stderr
        self.counts = {"done": 0, "refused": 0, "error": 0}
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, status: str) -> None:
        self.counts[status] += 1
        finished = sum(self.counts.values())
        now = time.monotonic()
        if finished < self.total and now - self._last < self.every_s:
            return
        self._last = now
        rate = finished / max(now - self.started, 1e-6) * 60
        left = (self.total - finished) / rate if rate else 0
        print(f"[{finished}/{self.total}] done {self.counts['done']}, refused {self.counts['refused']}, "
              f"errors {self.counts['error']}; {rate:.1f} studies/min, about {left:.0f} min left",
              file=self.stream, flush=True)


@dataclass
class Plan:
    """The studies to run now (each with its fingerprint and model digest) and those left as they are."""

    run: list[tuple[Study, str, str]]
    done: int
    failed_kept: int


def plan(studies: list[Study], ledger: Ledger, task: str, weights: dict, retry_errors: bool,
         settings: str = "") -> Plan:
    """Skip a study done with the same input, models and ``settings`` (those that change a result, such
    as ``force``: part of the ledger's model column); one refused or failed is retried with
    ``retry_errors`` or when any of those changed, else left as it is."""
    digests: dict = {}
    chosen, done, kept = [], 0, 0
    for study in studies:
        kinds = task_models(task, bool(study.centroids))
        if kinds not in digests:
            digests[kinds] = models_digest(kinds, weights) + (f" | {settings}" if settings else "")
        print_ = fingerprint(study)
        row = ledger.rows.get(study.id)
        same = row is not None and row["fingerprint"] == print_ and row["model"] == digests[kinds]
        if same and row["status"] == "done":
            done += 1
        elif same and not retry_errors:
            kept += 1
        else:
            chosen.append((study, print_, digests[kinds]))
    return Plan(chosen, done, kept)


def _failed_row(study: Study, task: str, exc: BaseException) -> dict:
    """The row of a study whose task itself failed (its workers died, or it could not run at all)."""
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        reason = "the workers running it died (out of memory?); the scheduler gave up after several tries"
    else:
        reason = f"the task failed ({type(exc).__name__}: {exc})"
    return {"id": study.id, "task": task, "path": study.path, "centroids": study.centroids, "status": "error",
            "reason": reason}


def run_cohort(client, todo: list[tuple[Study, str, str]], ledger: Ledger, task: str, out_dir,
               weights: dict, options: dict, settings: str = "", progress: Progress | None = None) -> None:
    """Run each study of ``todo`` as one task and record it in ``ledger`` as it completes. A row's model
    is the digest of the networks its worker loaded (with ``settings``): a worker whose installation
    holds other shipped models than this machine is named once, and its studies run again next time.

    At most ``IN_FLIGHT`` tasks (or four per worker thread, if more) are on the cluster at a time, the
    next submitted as one completes: a scheduler holding 10^6 tasks would need gigabytes, and Ctrl-C has
    only those to cancel; the ledger then holds every study that finished."""
    from distributed import as_completed

    from .tasks import run_study

    progress = progress or Progress(len(todo))
    out_dir = str(Path(out_dir).resolve())
    waiting, outstanding = iter(todo), {}   # outstanding: key -> (study, fingerprint, digest), future

    def submit(item):
        key = f"{task}-{item[0].id}-{uuid.uuid4().hex[:8]}"
        future = client.submit(run_study, task, item[0].to_dict(), out_dir, weights, options, key=key, pure=False)
        outstanding[key] = item, future
        return future

    window = max(IN_FLIGHT, 4 * sum(client.nthreads().values()))
    running = as_completed([submit(item) for item in itertools.islice(waiting, window)])
    warned = False
    try:
        for future in running:
            (study, print_, digest), _ = outstanding.pop(future.key)
            try:
                row = future.result()
                row["model"] += f" | {settings}" if settings else ""
            except Exception as exc:   # any failure of the task itself is the study's error
                row = {**_failed_row(study, task, exc), "model": digest}
            following = next(waiting, None)
            if following is not None:
                running.add(submit(following))
            if row["model"] != digest and not warned:
                warned = True
                print(f"warning: worker {row.get('worker')} ran models {row['model']}, not {digest} as here: "
                      "are the workers' spine-analysis installations the same as this one?", file=sys.stderr)
            row["fingerprint"] = print_
            ledger.record(row)
            progress.update(row["status"])
    finally:
        if outstanding:
            client.cancel([future for _, future in outstanding.values()])
        ledger.snapshot()
