"""The Docker adapter: docker-py behind the domain's ports."""

from service.adapters.docker.adapter import DockerAdapter, docker_host_description

__all__ = ["DockerAdapter", "docker_host_description"]
