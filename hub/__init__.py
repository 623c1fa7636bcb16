"""The control plane: JupyterHub config, Keycloak login, the workspace service, its database and provisioning."""
