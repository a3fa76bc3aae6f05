"""The use cases: everything the CLI, the API and the daemon can ask for.

One module per area (instances, backups, snapshots, restores, retention,
targets, volumes, recovery, jobs, schedules, health). Each function takes the
:class:`~service.bootstrap.Services` and plain values, and returns records or
raises :mod:`backup.errors`; the entry points only parse input, call one of
these and format the result. Long operations are split into ``prepare_*``
(every check that can fail on bad input, before anything is written) and
``execute_*`` (the work), so the API can answer bad input at once and run the
work as a job.
"""
