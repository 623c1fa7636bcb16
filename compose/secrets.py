"""The secrets folder of ``docker-compose.yml``: every credential and key of the platform, one file each, made once.

    python3 -m agp.compose.secrets [FOLDER]     # default: compose/secrets beside docker-compose.yml

The names are the runtime's (:data:`agp.core.settings.GENERATED_CREDENTIALS`, :class:`agp.core.tokens.KeyPaths`) and
the Helm chart's Secret keys; compose mounts each into the services that need it at ``/run/secrets/<name>``, which is
the settings' ``secrets_dir``. What exists is kept (tokens, certificates and the database's passwords stay valid);
``--demo-password`` sets the demo users' password. The folder is the owner's only (0700); its files are readable by
all (0444), because the containers run as users of their own, which must read the few files mounted into them.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from agp.core.settings import GENERATED_CREDENTIALS
from agp.core.tokens import KeyPaths

from . import keys

HERE = Path(__file__).resolve().parent
DEFAULT_FOLDER = HERE / "secrets"
# Trino's certificate names the service as the notebook servers and the workspace service reach it.
TRINO_HOST = "trino"
# Random text beside the generated credentials (the chart's Secret has the same keys): JupyterHub's cookie secret and
# crypt key (hex of 32 bytes), configurable-http-proxy's API token, and the demo realm's users' password.
HEX_SECRETS = ("hub-cookie-secret", "hub-crypt-key")
TEXT_SECRETS = ("proxy-token", "demo-user.password")


def names() -> list[str]:
    """Every file of the folder (what compose's top-level ``secrets:`` may name)."""
    paths = KeyPaths(Path())
    made_by_keys = [
        paths.broker_private,
        paths.broker_public,
        paths.trino_keystore,
        paths.trino_ca,
        paths.internal_secret,
        paths.spooling_key,
    ]
    return sorted({*GENERATED_CREDENTIALS.values(), *HEX_SECRETS, *TEXT_SECRETS, *(p.name for p in made_by_keys)})


def ensure(folder: Path, demo_password: str | None = None) -> list[str]:
    """Make what is missing in ``folder``; returns the names made now."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    before = {p.name for p in folder.iterdir()}
    keys.ensure(KeyPaths(folder), TRINO_HOST)
    keys.ensure_secrets(folder, sorted({*GENERATED_CREDENTIALS.values(), *TEXT_SECRETS}))
    for name in HEX_SECRETS:
        if not (folder / name).exists():
            (folder / name).write_text(secrets.token_hex(32))
    if demo_password:
        path = folder / "demo-user.password"
        path.chmod(0o600)
        path.write_text(demo_password)
    for name in names():
        (folder / name).chmod(0o444)
    return sorted(set(names()) - before)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m agp.compose.secrets", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER, help=f"default: {DEFAULT_FOLDER}")
    parser.add_argument("--demo-password", help="password of the demo users alice, bob and admin (default: random)")
    args = parser.parse_args(argv)
    made = ensure(args.folder, args.demo_password)
    print(f"{args.folder}: made {len(made)} of {len(names())} secrets" + (f" ({', '.join(made)})" if made else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
