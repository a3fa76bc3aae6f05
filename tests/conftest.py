"""Test-wide plugins: the Docker harness fixtures (engine, network, database containers)."""

pytest_plugins = ["tests.harness.docker_fixtures"]
