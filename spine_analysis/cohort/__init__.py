"""Cohort runs: thousands of studies through the engine on Dask, resumable and idempotent.

``sources`` (which studies: a folder or a CSV manifest, their ids and input fingerprints),
``models`` (the digest naming the networks a task runs), ``tasks`` (one study on a worker: the same
engine entry points as the command line and the warm server, models cached per worker process),
``ledger`` (one row per study: the journal written after each study, Parquet and CSV copies),
``run`` (the cluster: a loopback-only ``LocalCluster`` or a running scheduler, TLS; progress),
``tables`` (the cohort table) and ``summary`` (summary.html with the distributions).

This file imports nothing heavy: Dask and torch load only when a cohort runs.
"""

#: What ``spine-analysis cohort --task`` runs on each study.
TASKS = ("cobb", "fracture", "centra")
