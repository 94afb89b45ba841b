"""The why-service's access rule (``nomade.whyservice.access``) for commands the user runs
themself: ``nomade jobs`` and ``nomade report``. A non-root caller sees only their own jobs;
root and members of ``privacy.admin_group`` see everyone's. One rule, not a second one: this
module only names the local caller and says what a listing may show."""

import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from .errors import AccessDenied
from .whyservice.access import Caller, check_access, is_admin

__all__ = ["Caller", "ListingScope", "check_access", "listing_scope", "local_caller"]


def local_caller() -> Caller:
    """The user running this process (the real uid: whoever started a setuid copy stays themself)."""
    return Caller(uid=os.getuid(), gid=os.getgid(), pid=os.getpid())


@dataclass(frozen=True)
class ListingScope:
    """Which jobs a listing may show: those of ``users`` (empty: any user), and only the
    ``owner``'s when it is set."""

    users: Tuple[str, ...] = ()
    owner: Optional[Caller] = None


def listing_scope(caller: Caller, admin_group: str, users: Sequence[str] = (),
                  all_users: bool = False) -> ListingScope:
    """What ``nomade jobs [--user NAME...] [--all-users]`` may list for ``caller``; AccessDenied
    when a non-admin asks for someone else's jobs. Root lists everyone's by default, other
    callers (admins too) their own unless they ask for more."""
    if is_admin(caller, admin_group):
        if users or all_users or caller.uid == 0:
            return ListingScope(tuple(users), None)
        return ListingScope((), caller)
    hint = f"you can list your own jobs; members of {admin_group or 'the admin group'} see all"
    if all_users:
        raise AccessDenied("--all-users: only root and admins may list other users' jobs", hint=hint)
    others = [u for u in users if u != caller.name]
    if others:
        raise AccessDenied(f"--user {others[0]}: only root and admins may list other users' jobs",
                           hint=hint)
    return ListingScope((), caller)
