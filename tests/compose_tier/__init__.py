"""The compose tier: compose/docker-compose.yml run for real with podman on this machine (``-m compose``)."""
