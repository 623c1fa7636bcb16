"""The cluster's certificates, service-account key and kubeconfigs, written into the state folder.

One CA signs everything (a test cluster; a real one separates the etcd, front-proxy and cluster CAs). Keys are
ECDSA P-256: quick to make, accepted by every component. Files are kept when they exist, so ``up`` is idempotent.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .configs import pki
from .settings import ClusterSettings

VALIDITY = dt.timedelta(days=365)
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH


@dataclass(frozen=True)
class Cert:
    """One certificate to issue: file stem, subject, the organisation (Kubernetes' group), usages and names."""

    name: str
    common_name: str
    organization: str | None = None
    usages: tuple = (CLIENT,)
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()


def certificates(s: ClusterSettings) -> list[Cert]:
    """Every certificate the cluster needs, with the identities RBAC and the Node authorizer expect."""
    hostname = socket.gethostname()
    return [
        Cert(
            "apiserver",
            "kube-apiserver",
            usages=(SERVER,),
            dns=(
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "localhost",
                hostname,
            ),
            ips=(s.node_ip, s.service_ip, "127.0.0.1"),
        ),
        Cert("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
        Cert("apiserver-etcd-client", "kube-apiserver-etcd-client"),
        Cert("etcd-server", "etcd", usages=(SERVER, CLIENT), dns=("localhost",), ips=("127.0.0.1",)),
        Cert("admin", "agp-k8s-admin", "system:masters"),
        Cert("controller-manager", "system:kube-controller-manager"),
        Cert("scheduler", "system:kube-scheduler"),
        Cert("kubelet", f"system:node:{s.node_name}", "system:nodes"),
        Cert("kubelet-serving", s.node_name, usages=(SERVER,), dns=(s.node_name, hostname), ips=(s.node_ip,)),
        Cert("kube-proxy", "system:kube-proxy"),
    ]


KUBECONFIGS = {  # kubeconfig file stem -> certificate name
    "kubeconfig": "admin",
    "controller-manager.kubeconfig": "controller-manager",
    "scheduler.kubeconfig": "scheduler",
    "kubelet.kubeconfig": "kubelet",
    "kube-proxy.kubeconfig": "kube-proxy",
}


def kubeconfig(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, user: str) -> dict:
    """A kubeconfig with the CA and the client's certificate embedded."""
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "agp-k8s", "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": "agp-k8s", "context": {"cluster": "agp-k8s", "user": user}}],
        "current-context": "agp-k8s",
    }


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    path.chmod(0o600 if private else 0o644)


def _issue(cert: Cert, ca_key, ca_cert: x509.Certificate) -> tuple[bytes, bytes]:
    key = _key()
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cert.common_name)]
    if cert.organization:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, cert.organization))
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(cert.usages)), critical=False)
    )
    names = [x509.DNSName(d) for d in cert.dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in cert.ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    signed = builder.sign(ca_key, hashes.SHA256())
    return signed.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def ensure(s: ClusterSettings) -> None:
    """Write the CA, the certificates, the service-account key pair and the kubeconfigs that are missing."""
    d = pki(s)
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    if not (d / "ca.crt").exists():
        ca_key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agp-k8s-ca")])
        now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
        ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        _write(d / "ca.key", _pem_key(ca_key), private=True)
        _write(d / "ca.crt", ca.public_bytes(serialization.Encoding.PEM))
    ca_key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), None)
    ca_pem = (d / "ca.crt").read_bytes()
    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    for cert in certificates(s):
        if not (d / f"{cert.name}.crt").exists():
            crt, key = _issue(cert, ca_key, ca_cert)
            _write(d / f"{cert.name}.key", key, private=True)
            _write(d / f"{cert.name}.crt", crt)
    if not (d / "sa.key").exists():
        sa = _key()
        _write(d / "sa.key", _pem_key(sa), private=True)
        pub = sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        _write(d / "sa.pub", pub)
    server = f"https://{s.node_ip}:{s.apiserver_port}"
    for file, cert_name in KUBECONFIGS.items():
        path = s.state / file
        if not path.exists():
            crt, key = (d / f"{cert_name}.crt").read_bytes(), (d / f"{cert_name}.key").read_bytes()
            cfg = kubeconfig(server, ca_pem, crt, key, cert_name)
            _write(path, yaml.safe_dump(cfg, sort_keys=False).encode(), private=True)
