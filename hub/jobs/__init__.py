"""Jobs: notebooks and scripts of a workspace run outside the notebook server, on demand or on a schedule.

- :mod:`.cron`: when a schedule fires next (pure).
- :mod:`.store`: jobs and runs in the workspace database; who may do what.
- :mod:`.scheduler`: the service's loop: fire due schedules once, start queued runs within the workspace's quota,
  notice ended runs, retry, time out, prune.
- :mod:`.executor`: what the loop asks of the place runs execute; :mod:`.local` (a process per run, the lab) and
  :mod:`.kube` (a Kubernetes Job per run).
- :mod:`.routes`: the REST API and pages; :mod:`.cli`: ``agp job …``.

The runner itself is ``agp.kernels.jobrun`` (the notebook runtime: papermill on the Antigravity kernel).
"""
