"""In-memory stand-ins for the service's ports, for the Docker-free use-case tier.

Each satisfies the same Protocol as the real adapter (:mod:`service.ports`,
:mod:`backup.ports`): mypy checks that where :func:`tests.fakes.services.fake_services`
builds a :class:`~service.bootstrap.Services` from them, and the catalog fake runs
the same contract suite as the SQLite and PostgreSQL catalogs.
"""
