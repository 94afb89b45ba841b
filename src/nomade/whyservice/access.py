"""Who may see which job. The caller's identity comes from the kernel (SO_PEERCRED), never from
the request."""

import grp
import logging
import os
import pwd
import socket
import struct
from dataclasses import dataclass
from typing import FrozenSet, Mapping, Optional

from ..errors import AccessDenied

_PEERCRED = struct.Struct("3I")  # struct ucred: pid_t pid, uid_t uid, gid_t gid; ids are unsigned

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who is asking. ``gid`` is the peer process's gid, kept for logs only: group membership
    comes from the user database for ``uid`` (see ``groups``)."""

    uid: int
    gid: int
    pid: int = 0

    @property
    def name(self) -> Optional[str]:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return None

    def groups(self) -> FrozenSet[int]:
        """The uid's primary and supplementary groups from the user database, never the peer
        process's (e)gid: a setgid program run by a user must not make that user an admin.
        A uid without a passwd entry has no groups."""
        try:
            entry = pwd.getpwuid(self.uid)
        except KeyError:
            return frozenset()
        try:
            return frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
        except OSError as exc:  # the group database failed: primary group only
            log.warning("cannot list the groups of %s (uid %d): %s", entry.pw_name, self.uid, exc)
            return frozenset({entry.pw_gid})


def parse_peercred(raw: bytes) -> Caller:
    """SO_PEERCRED's ``struct ucred`` -> Caller (unsigned: uid 4294967294 stays that, not -2)."""
    pid, uid, gid = _PEERCRED.unpack(raw)
    return Caller(uid=uid, gid=gid, pid=pid)


def peer_caller(conn: socket.socket) -> Caller:
    return parse_peercred(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))


def admin_gid(group: str) -> Optional[int]:
    if not group:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def is_admin(caller: Caller, admin_group: str) -> bool:
    if caller.uid == 0:
        return True
    gid = admin_gid(admin_group)
    return gid is not None and gid in caller.groups()


def check_access(caller: Caller, job: Mapping[str, object], admin_group: str) -> None:
    """Raise AccessDenied unless the caller owns the job or is root / an admin."""
    if is_admin(caller, admin_group):
        return
    uid = job.get("uid")
    if uid is not None and int(uid) == caller.uid:
        return
    if uid is None and job.get("user") and job.get("user") == caller.name:
        return
    raise AccessDenied(f"job {job.get('job_id')} belongs to another user",
                       hint=f"you can ask about your own jobs; members of {admin_group or 'the admin group'} see all")
