"""Test-wide plugins: the Docker harness (engine, network, database containers) and the
S3 harness (moto's HTTP server on 127.0.0.1)."""

pytest_plugins = ["tests.harness.docker_fixtures", "tests.harness.s3_fixtures",
                  "tests.harness.receiver"]
