"""The ways in: the HTTP API, the CLI and the daemon, with the one error table they share.

Entry points parse input, call one use case and format its result; they hold
no logic of their own.
"""
