"""Senders for notifications and dead-man pings (:class:`service.usecases.outbox.Sender`).

:mod:`.webhook` is Holdfast's own signed JSON webhook and :mod:`.ping` the
healthchecks.io-style start/success/fail calls. Each translates its HTTP
client's errors into :class:`~backup.errors.DeliveryFailed` with a line that
names the destination by scheme and host only: a URL's path, user and query
often carry the token, so they never reach a log, the catalog or an answer.
"""
