"""The one error the cluster tool raises: a sentence for the user; the detail goes to the log files it names."""


class ClusterError(Exception):
    """Something the user must act on, said in one sentence (what failed, and where to look or what to do)."""
