"""The runtime's core (``agp.core``): what every role shares and nothing of any one role.

Settings, names, pinned versions, the workspace data model and permissions, tokens and data-plane clients. The hub,
the workspace service, the spawners, the server extension and the kernels import it; it imports none of them, and
nothing of the lab (``agp.compose``), which is one producer of its settings (a Helm values file is another).
It lives in ``hub/core/`` because the repository's top-level folders are the platform's parts.
"""
