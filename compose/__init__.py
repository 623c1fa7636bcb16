"""The data plane composed: the native mini-lab, the shared service configs and ``docker-compose.yml``."""
