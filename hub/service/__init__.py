"""The workspace service: a JupyterHub-managed FastAPI app with the workspace API, its pages, and provisioning."""
