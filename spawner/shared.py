"""A workspace's shared folder on one machine (the lab): one folder per workspace, reached by members only.

Every member's server sees it as ``shared/`` beside their own files (a symlink the server's contents manager follows).
What a member may do there is a POSIX ACL with one entry per member's OS user (``rwx`` for owners and editors,
``r-x`` for viewers) on every file and folder, plus the same as each folder's default ACL so that new files inherit
it; owning group and others get nothing. The kernel checks ACLs at each access, so a change applies to running
servers at once. Supplementary groups would not: a process keeps the groups it started with.

The workspace service re-applies the whole membership (:func:`apply`) whenever members change and every few
seconds (Keycloak groups change without a request to it); a spawner adds its own user's entry (:func:`grant`) when
that user's OS account is newer than the last full apply. Both hold the folder's lock.

A member may ``chmod`` or ``setfacl`` a file of their own, and reach it only while the top folder lets them in.
:func:`apply` gives what is owned by someone who may not write there (a removed member, a viewer) to root, so a
former member keeps no owner's rights, not even through a folder they still hold open. Files already open stay
readable to the process that opened them (POSIX has no revocation).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
import stat
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path

# The kernel's POSIX ACL extended attributes (linux/posix_acl_xattr.h): a 4-byte version (2) then 8-byte entries
# (u16 tag, u16 permissions, u32 id), sorted by tag then id. A stable kernel ABI. Written here because no maintained
# Python binding ships wheels (pylibacl compiles against libacl), and setfacl works by path: a hostile member could
# swap a folder for a symlink between its walk and its write and have root put an ACL on any file of the machine.
# Writing through a file descriptor opened with O_NOFOLLOW below a directory descriptor cannot be misled that way.
ACCESS, DEFAULT = "system.posix_acl_access", "system.posix_acl_default"
_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_UNDEFINED = 0xFFFFFFFF
R, W, X = 4, 2, 1
LINK_NAME = "shared"
MAX_DEPTH = 100  # folders nested deeper are closed by the ACL walk (see _walk)

Access = Mapping[int, bool]  # uid -> whether it may write


def encode(owner: int, named: Mapping[int, int]) -> bytes:
    """An ACL: the owner's permissions, ``named`` (uid -> permissions), nothing for owning group and others."""
    mask = 0
    for perm in named.values():
        mask |= perm
    entries = [(_USER_OBJ, owner, _UNDEFINED)]
    entries += [(_USER, perm, uid) for uid, perm in sorted(named.items())]
    entries += [(_GROUP_OBJ, 0, _UNDEFINED), (_MASK, mask, _UNDEFINED), (_OTHER, 0, _UNDEFINED)]
    return struct.pack("<I", _VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries)


def decode_named(blob: bytes) -> dict[int, int]:
    """The named-user entries (uid -> permissions) of an ACL attribute."""
    (version,) = struct.unpack_from("<I", blob)
    if version != _VERSION:
        raise ValueError(f"POSIX ACL version {version}")
    entries = (struct.unpack_from("<HHI", blob, off) for off in range(4, len(blob), 8))
    return {uid: perm for tag, perm, uid in entries if tag == _USER}


def permissions(access: Access, folder: bool, owner_mode: int) -> dict[int, int]:
    """The named entries for one file or folder: folders ``rwx``/``r-x``, files ``rw``/``r`` (and ``x`` when its
    owner may execute it)."""
    x = X if folder or owner_mode & stat.S_IXUSR else 0
    return {uid: R | (W if writes else 0) | x for uid, writes in access.items()}


def folder_of(root: Path, slug: str) -> Path:
    return root / slug


def ensure_folder(root: Path, slug: str) -> tuple[Path, bool]:
    """``root`` (root's, 0711: users pass, cannot list) and the workspace's folder in it (root's, 0700 until its
    ACL is applied); True when the folder was created now."""
    for folder, mode in ((root.parent, None), (root, 0o711)):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=mode or 0o755)
        _check_roots(folder, mode)
    path = folder_of(root, slug)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode):
            raise RuntimeError(f"shared folder {path} exists and is not a folder") from None
        return path, False
    return path, True


def _check_roots(folder: Path, mode: int | None) -> None:
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or (os.geteuid() == 0 and info.st_uid != 0):
        raise RuntimeError(f"{folder} must be a folder owned by root")
    if mode is not None and stat.S_IMODE(info.st_mode) != mode:
        os.chmod(folder, mode)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One writer of the folder's ACLs at a time (the service and the hub are two processes); the lock file is
    beside the folder, in root's 0711 folder, where users cannot open it."""
    fd = os.open(folder.parent / f".{folder.name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def current(folder: Path) -> dict[int, int]:
    """The named entries of the folder's own ACL (empty when none is set)."""
    try:
        return decode_named(os.getxattr(folder, ACCESS, follow_symlinks=False))
    except OSError as e:
        if e.errno == errno.ENODATA:
            return {}
        raise


def apply(folder: Path, access: Access) -> int:
    """Make every file and folder under ``folder`` (itself included) grant exactly ``access``; entries owned by a
    uid that may not write go to root. Symlinks are neither followed nor changed. Returns how many were set."""
    with locked(folder):
        return _walk(folder, lambda named: dict(access), chown=lambda uid: uid != 0 and not access.get(uid, False))


def grant(folder: Path, uid: int, writes: bool) -> bool:
    """Give one uid its entry everywhere under ``folder``, leaving the others as they are; nothing to do (False)
    when the folder's own ACL already has it."""
    want = R | X | (W if writes else 0)
    with locked(folder):
        if current(folder).get(uid) == want:
            return False

        def merged(named: dict[int, int]) -> dict[int, bool]:
            out = {u: bool(p & W) for u, p in named.items()}
            out[uid] = writes
            return out

        _walk(folder, merged, chown=lambda owner: owner == uid and not writes)
        return True


def _walk(folder: Path, access_of, chown) -> int:
    """Set every regular file and folder under ``folder`` through descriptors: ``os.fwalk`` enters a folder only
    when the descriptor it opened is the entry it listed (a folder swapped for a symlink is skipped), and files are
    opened with O_NOFOLLOW below their folder's descriptor."""
    top = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    count = 0
    try:
        for root, dirs, files, dirfd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
            count += _set(dirfd, access_of, chown)
            if root.count(os.sep) >= MAX_DEPTH:
                # os.fwalk recurses (and holds a descriptor per level): a member's folders nested deeper would end
                # the walk half-way, every time, leaving the old entries below (a demoted viewer's rwx). Those
                # folders are closed instead: root's, no entries, nothing below reachable.
                count += sum(_close(dirfd, name) for name in dirs)
                dirs.clear()
            for name in files:
                try:
                    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dirfd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOENT, errno.ENXIO, errno.EMLINK):  # symlink, gone, socket
                        continue
                    raise
                try:
                    count += _set(fd, access_of, chown)
                finally:
                    os.close(fd)
    finally:
        os.close(top)
    return count


def _close(dirfd: int, name: str) -> int:
    """Make the folder ``name`` below ``dirfd`` root's with no entries (a folder nested deeper than MAX_DEPTH)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR):  # swapped for a symlink or a file, or gone
            return 0
        raise
    try:
        os.fchown(fd, 0, 0)
        os.setxattr(fd, ACCESS, encode(7, {}))
        os.setxattr(fd, DEFAULT, encode(7, {}))
        return 1
    finally:
        os.close(fd)


def _set(fd: int, access_of, chown) -> int:
    """Set the ACL of one open file or folder (regular files and folders only)."""
    info = os.fstat(fd)
    is_dir = stat.S_ISDIR(info.st_mode)
    if not (is_dir or stat.S_ISREG(info.st_mode)):
        return 0
    if chown(info.st_uid):
        os.fchown(fd, 0, 0)
    try:
        named = decode_named(os.getxattr(fd, ACCESS))
    except OSError as e:
        if e.errno != errno.ENODATA:
            raise
        named = {}
    access = access_of(named)
    owner = (info.st_mode >> 6) & 7
    os.setxattr(fd, ACCESS, encode(owner, permissions(access, is_dir, info.st_mode)))
    if is_dir:
        os.setxattr(fd, DEFAULT, encode(7, permissions(access, True, 0)))
    return 1


def uids(users: Mapping[str, bool], prefix: str = "agp-") -> dict[int, bool]:
    """Hub users (name -> may write) as uids of their OS users; users with no OS account yet are left out (their
    first server's spawner grants them)."""
    from .osusers import os_user_name

    out = {}
    for user, writes in users.items():
        try:
            uid = pwd.getpwnam(os_user_name(user, prefix)).pw_uid
        except KeyError:
            continue
        if uid != 0:
            out[uid] = writes
    return out


def link(path: str, target: str) -> None:
    """``path`` -> ``target``, made or pointed right; anything else of that name (the user's own file) stays.
    Called as the server's user before it starts: a failure leaves the server without the link, not unstarted."""
    try:
        os.symlink(target, path)
    except FileExistsError:
        try:
            if os.path.islink(path) and os.readlink(path) != target:
                os.remove(path)
                os.symlink(target, path)
        except OSError:
            pass
    except OSError:
        pass
