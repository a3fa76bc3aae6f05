"""A client of a remote Holdfast daemon's HTTP API, for ``holdfast --server URL``.

:mod:`.errors` (no third-party import) holds what a failed call turns into;
:mod:`.client` (httpx, httpx-sse) holds :class:`~.client.RemoteBackend`, imported
only in remote mode so the CLI's start-up stays light. Nothing here imports the
entry points: the CLI hands the client the error classes to map answers back to.
"""
