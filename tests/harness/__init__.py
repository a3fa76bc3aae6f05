"""Test harness: the Docker engine and image scripts, and the fixtures that use them."""
