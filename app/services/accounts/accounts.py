"""Staff accounts: password hashing, sign-in, invitations and deactivation."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select

from app.models import Role, User, db, utcnow
from app.services.core import audit, links
from app.services.core.errors import Conflict, DomainError, NotAllowed
from app.services.core.tokens import hash_token, new_token
from app.services.messaging import staff
from app.services.microsoft.wiring import get_microsoft

logger = logging.getLogger(__name__)

def _hasher() -> PasswordHasher:
    """argon2id; by default argon2-cffi's RFC 9106 "low memory" profile (t=3, m=64 MiB, p=4), well above
    OWASP's floor (m=19 MiB, t=2). The test suite lowers the cost through ARGON2_* settings.
    """
    app = current_app._get_current_object()
    hasher = app.extensions.get("foyer_password_hasher")
    if hasher is None:
        hasher = PasswordHasher(time_cost=app.config["ARGON2_TIME_COST"], memory_cost=app.config["ARGON2_MEMORY_KIB"],
                                parallelism=app.config["ARGON2_PARALLELISM"])
        app.extensions["foyer_password_hasher"] = hasher
        # A hash of a random password, checked when the email is unknown so timing does not reveal accounts.
        app.extensions["foyer_dummy_hash"] = hasher.hash(secrets.token_urlsafe(16))
    return hasher


def _dummy_hash() -> str:
    _hasher()
    return current_app.extensions["foyer_dummy_hash"]
INVITE_LIFETIME = timedelta(days=7)
#: A "forgot password" link is short-lived: it goes to a mailbox that may be read by others later.
RESET_LIFETIME = timedelta(hours=1)
#: At most one reset email per account this often, however often it is asked for: each one takes a slot
#: of the email quota that attendees' emails share.
RESET_RESEND_AFTER = timedelta(minutes=5)


def normalize_email(email: str) -> str:
    """Validate an address (syntax only, no DNS) and return its normalised, lower-cased form."""
    try:
        info = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        local, _at, domain = email.strip().rpartition("@")
        if local and _is_local_tenant_domain(domain):
            # A local tenant's staff (e.g. adele.vance@contoso.emulator.invalid) sit on a reserved domain;
            # they may be Foyer users so that "Sign in with Microsoft" can be tried without Azure.
            return normalize_email(f"{local}@example.com").rsplit("@", 1)[0] + "@" + domain.lower()
        raise DomainError(_("Enter a valid email address, like name@example.org."), field="email") from exc
    return info.normalized.lower()


def _is_local_tenant_domain(domain: str) -> bool:
    return get_microsoft().is_local_tenant_domain(domain)


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def check_password_rules(password: str, *, min_length: int) -> None:
    if len(password) < min_length:
        raise DomainError(_("Use at least %(num)s characters.", num=min_length), field="password")
    if len(password) > 1024:
        raise DomainError(_("That password is too long."), field="password")


def load_user_from_session_id(session_id: str) -> User | None:
    """Flask-Login's loader: `<id>:<session_version>`, so a password change ends old sessions."""
    user_id, _, version = session_id.partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version) or not user.is_active_account:
        return None
    return user


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


def authenticate(email: str, password: str) -> User | None:
    """Return the active user with this email and password, or None (in constant-ish time)."""
    user = find_user_by_email(email)
    stored = user.password_hash if user and user.password_hash else _dummy_hash()
    try:
        _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        _record_failed_sign_in(user)
        return None
    if user is None or not user.password_hash or not user.is_active_account:
        _record_failed_sign_in(user)
        return None
    if _hasher().check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    audit.record("auth.login", actor=user, target=user, summary="Signed in with a password")
    logger.info("User %s signed in", user.id)
    return user


def record_sign_out(user: User) -> None:
    """End every session of the user on the server (a copied cookie stops working too) and audit it."""
    user.session_version += 1
    audit.record("auth.logout", actor=user, target=user, summary="Signed out")


def _record_failed_sign_in(user: User | None) -> None:
    """Audit a refused password sign-in; the address typed is kept only when it is a staff account's."""
    if user is not None:
        audit.record("auth.login_failed", actor_kind="anonymous", target=user,
                     summary=f"Refused sign-in for {user.email}")
    else:
        audit.record("auth.login_failed", actor_kind="anonymous", summary="Refused sign-in for an unknown address")


def has_any_user() -> bool:
    return bool(db.session.scalar(select(func.count(User.id))))


def create_user(email: str, *, role: Role, name: str = "", password: str | None = None, min_length: int = 10) -> User:
    """Create a staff account; without a password it waits for its invitation to be accepted."""
    email = normalize_email(email)
    if find_user_by_email(email):
        raise Conflict(_("A user with this email already exists."), field="email")
    if password is not None:
        check_password_rules(password, min_length=min_length)
    user = User(email=email, name=name.strip(), role=role, password_hash=hash_password(password) if password else None)
    db.session.add(user)
    db.session.flush()
    logger.info("User %s created with role %s", user.id, role)
    return user


def create_first_admin(email: str, password: str, *, name: str = "", min_length: int = 10) -> User:
    """Create the very first admin; refused once any user exists."""
    if has_any_user():
        raise NotAllowed(_("Foyer is already set up."))
    user = create_user(email, role=Role.admin, name=name, password=password, min_length=min_length)
    user.last_login_at = utcnow()  # setup signs the new admin in at once
    audit.record("user.setup", actor=user, target=user, summary=f"Set up Foyer as its first admin, {user.email}")
    return user


def issue_invitation(user: User) -> str:
    """Give the user a fresh one-time link token for setting a password; return the token."""
    token = new_token()
    user.invite_token_hash = hash_token(token)
    user.invite_expires_at = utcnow() + INVITE_LIFETIME
    return token


def user_for_invitation(token: str) -> User | None:
    user = db.session.scalar(select(User).where(User.invite_token_hash == hash_token(token)))
    if user is None or user.invite_expires_at is None or user.invite_expires_at < utcnow():
        return None
    if not user.is_active_account:
        return None
    return user


def accept_invitation(user: User, password: str, *, min_length: int) -> None:
    check_password_rules(password, min_length=min_length)
    user.password_hash = hash_password(password)
    user.invite_token_hash = None
    user.invite_expires_at = None
    user.session_version += 1
    user.last_login_at = utcnow()  # accepting signs the person in at once


def change_password(user: User, current: str, new: str, *, min_length: int) -> None:
    if not user.password_hash:
        raise DomainError(_("This account has no password yet."), field="current_password")
    try:
        _hasher().verify(user.password_hash, current)
    except (VerificationError, InvalidHashError):
        raise DomainError(_("That is not your current password."), field="current_password") from None
    check_password_rules(new, min_length=min_length)
    user.password_hash = hash_password(new)
    user.session_version += 1
    logger.info("User %s changed their password", user.id)


def set_active(user: User, active: bool, *, actor: User) -> None:
    """Deactivate or reactivate an account; an admin cannot lock themselves out."""
    if user.id == actor.id and not active:
        raise NotAllowed(_("You cannot deactivate your own account."))
    user.is_active_account = active
    user.session_version += 1
    audit.record("user.reactivate" if active else "user.deactivate", actor=actor, target=user,
                 summary=f"{'Reactivated' if active else 'Deactivated'} {user.email}")
    logger.info("User %s %s by %s", user.id, "reactivated" if active else "deactivated", actor.id)


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.role, User.email)))


def active_organizers() -> list[User]:
    return list(db.session.scalars(select(User).where(User.is_active_account.is_(True)).order_by(User.email)))


# --- user management (admin) ------------------------------------------------------------------------


def _active_admin_count() -> int:
    return db.session.scalar(
        select(func.count(User.id)).where(User.role == Role.admin, User.is_active_account.is_(True))
    ) or 0


def _ensure_not_last_admin(user: User, message: str) -> None:
    if user.role == Role.admin and user.is_active_account and _active_admin_count() <= 1:
        raise NotAllowed(message)


def invite_user(email: str, *, name: str, role: Role, actor: User) -> tuple[User, str]:
    """Create an account without a password, email it its one-time invitation link, and return it with
    the token (the admin sees the link once, too).
    """
    user = create_user(email, role=role, name=name)
    token = issue_invitation(user)
    audit.record("user.invite", actor=actor, target=user, summary=f"Invited {user.email} as {role.value}")
    logger.info("User %s invited as %s by %s", user.id, role, actor.id)
    email_invitation(user, token, actor=actor)
    return user, token


def email_invitation(user: User, token: str, *, actor: User) -> None:
    """Queue the invitation email with its one-time link (through the message log; audited)."""
    staff.queue_staff_link("staff_invite", user, link=links.public_url("auth.invitation_GET", token=token),
                           expires=user.invite_expires_at, key=hash_token(token)[:16])
    audit.record("user.invitation_sent", actor=actor, target=user,
                 summary=f"Emailed an invitation link to {user.email}")


def request_password_reset(email: str) -> bool:
    """"Forgot password": email an active account a short-lived one-time link to choose a new password.

    The caller answers the same whatever happens (no account enumeration); True when a link was queued.
    The password itself stays valid until the link is used, so nobody can lock an account out by asking.
    """
    try:
        address = normalize_email(email or "")
    except DomainError:
        return False
    user = find_user_by_email(address)
    if user is None or not user.is_active_account:
        logger.info("Password reset asked for an address with no active account")
        return False
    now = utcnow()
    expires = user.invite_expires_at
    if expires is not None and now + RESET_LIFETIME - RESET_RESEND_AFTER < expires <= now + RESET_LIFETIME:
        logger.info("Password reset for user %s asked again within minutes; the link sent stays", user.id)
        return False
    token = new_token()
    user.invite_token_hash = hash_token(token)
    user.invite_expires_at = now + RESET_LIFETIME
    staff.queue_staff_link("password_reset", user, link=links.public_url("auth.password_reset_GET", token=token),
                           expires=user.invite_expires_at, key=user.invite_token_hash[:16])
    audit.record("user.password_reset_requested", actor_kind="anonymous", target=user,
                 summary=f"Emailed a password reset link to {user.email}")
    logger.info("Password reset link for user %s queued", user.id)
    return True


def complete_password_reset(user: User, password: str, *, min_length: int) -> None:
    """Set the new password from a reset link: the link is used up and every other session ends."""
    accept_invitation(user, password, min_length=min_length)  # bumps session_version
    audit.record("user.password_reset", actor=user, target=user, summary=f"{user.email} chose a new password "
                 "from a reset link")
    logger.info("User %s reset their password", user.id)


def create_user_with_password(email: str, *, name: str, role: Role, password: str, actor: User,
                              min_length: int) -> User:
    """Create an account that can sign in straight away with the password the admin chose."""
    user = create_user(email, role=role, name=name, password=password, min_length=min_length)
    audit.record("user.create", actor=actor, target=user, summary=f"Created {user.email} as {role.value}")
    logger.info("User %s created with a password by %s", user.id, actor.id)
    return user


def invitation_pending(user: User) -> bool:
    """True while a one-time link has been issued and not used or expired (a password reset link
    asked for by someone who has a password is not an invitation).
    """
    return bool(not user.password_hash and user.invite_token_hash and user.invite_expires_at
                and user.invite_expires_at > utcnow())


def reissue_invitation(user: User, *, actor: User) -> str:
    """A fresh invitation link for an account that has no password yet; older links stop working."""
    if user.password_hash:
        raise Conflict(_("This user has already set a password. Use “Reset password” instead."))
    if not user.is_active_account:
        raise Conflict(_("Reactivate this account before sending it a new link."))
    token = issue_invitation(user)
    audit.record("user.reinvite", actor=actor, target=user, summary=f"New invitation link for {user.email}")
    logger.info("Invitation for user %s re-issued by %s", user.id, actor.id)
    email_invitation(user, token, actor=actor)
    return token


def reset_password(user: User, *, actor: User) -> str:
    """Clear the password, end every session of the user, and return a one-time link to choose a new one."""
    if user.id == actor.id:
        raise NotAllowed(_("Change your own password from your account page instead."))
    if not user.is_active_account:
        raise Conflict(_("Reactivate this account before resetting its password."))
    user.password_hash = None
    user.session_version += 1
    token = issue_invitation(user)
    audit.record("user.reset_password", actor=actor, target=user, summary=f"Reset the password of {user.email}")
    logger.info("Password of user %s reset by %s", user.id, actor.id)
    return token


def change_role(user: User, role: Role, *, actor: User) -> None:
    """Make a user an admin or an organizer; the last active admin stays an admin."""
    if user.role == role:
        return
    if role != Role.admin:
        _ensure_not_last_admin(user, _("This is the last active admin. Make someone else an admin first."))
    user.role = role
    audit.record("user.role", actor=actor, target=user, summary=f"{user.email} is now {role.value}")
    logger.info("User %s is now %s (changed by %s)", user.id, role, actor.id)


def deactivate_user(user: User, *, actor: User) -> None:
    """Lock an account out and end its sessions; never yourself, never the last active admin."""
    if user.id == actor.id:
        raise NotAllowed(_("You cannot deactivate your own account."))
    _ensure_not_last_admin(user, _("This is the last active admin and cannot be deactivated."))
    set_active(user, False, actor=actor)


def reactivate_user(user: User, *, actor: User) -> None:
    """Let a deactivated account sign in again."""
    set_active(user, True, actor=actor)
