"""The control plane: JupyterHub config, Keycloak login, the workspace service (filled by the control-plane issue)."""
