"""The workspace spawners: ``workspace-local`` for one machine, ``workspace-kube`` for Kubernetes."""

from .workspace import SpawnRefused, check_spawn, data_plane_env, workspace_env

__all__ = ["SpawnRefused", "check_spawn", "data_plane_env", "workspace_env"]
