import os
import socket

from agp.compose import ports


def test_a_listening_port_names_its_process():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        who = ports.holder(s.getsockname()[1])
    assert who is not None
    assert who.startswith(f"pid {os.getpid()} (")


def test_a_free_port_has_no_holder():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert ports.holder(port) is None
