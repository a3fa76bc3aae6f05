"""The web dashboard: server-rendered pages (Jinja2 and htmx) under ``/ui``.

It is an entry point like the API and the CLI: each route reads the signed-in
token from its cookie, calls one use case and renders the result; what a
token's scopes forbid is not shown, and the route refuses it anyway. Every
script and style ships in ``static/`` (the vendored ones are listed in
``static/vendor/assets.json``), so it works with no network.
"""
