"""Who may see which job. The caller's identity comes from the kernel (SO_PEERCRED), never from
the request."""

import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass
from typing import FrozenSet, Mapping, Optional

from ..errors import AccessDenied

_PEERCRED = struct.Struct("3i")  # pid, uid, gid


@dataclass(frozen=True)
class Caller:
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
        name = self.name
        if name is None:
            return frozenset({self.gid})
        return frozenset(os.getgrouplist(name, self.gid))


def peer_caller(conn: socket.socket) -> Caller:
    pid, uid, gid = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return Caller(uid=uid, gid=gid, pid=pid)


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
