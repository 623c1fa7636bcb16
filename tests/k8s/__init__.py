"""A single-node Kubernetes built and run on this machine, for the cluster tier of the tests.

Run from the repository's root: ``python3 -m tests.k8s up|down|status|build``. ``up`` installs the Debian
packages it needs, builds Kubernetes and Helm from the Go module proxy into a cache keyed by version, writes
certificates and configs into a state folder, starts etcd, the control plane, containerd, the kubelet and
kube-proxy, waits for the node to be Ready and prints the kubeconfig's path. ``down`` stops what ``up`` started
and restores what it changed on the machine. See ``../shared/KUBERNETES-HERE.md`` for why each setting is as it is.

Modules: ``settings`` (versions, folders, ports), ``build`` (Go builds into the cache), ``configs`` (pure
builders of every config file and command line), ``pki`` (certificates and kubeconfigs), ``host`` (Debian
packages and the machine-wide changes made and undone), ``cluster`` (start, wait, stop).
"""
