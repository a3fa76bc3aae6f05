"""Test-wide plugins: the Docker harness (engine, network, database containers), the
S3 harness (moto's HTTP server on 127.0.0.1), the notification receiver and the
headless chromium of the dashboard's browser tests."""

pytest_plugins = ["tests.harness.docker_fixtures", "tests.harness.s3_fixtures",
                  "tests.harness.receiver", "tests.harness.browser"]
