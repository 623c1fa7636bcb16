"""The workspace spawner, local-process and Kubernetes flavours (filled by the control-plane issue)."""
