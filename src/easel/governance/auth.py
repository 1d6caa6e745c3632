"""Who is calling: a static key, a managed key (looked up on every request), an admin, or nobody."""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread

from .. import errors
from .keys import StaticKeys, digest, mask
from .keystore import KeyInfo, KeyStore

#: The longest `OpenAI-Organization` or `OpenAI-Project` value (what a usage row holds).
MAX_SCOPE = 200
MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


@dataclass(frozen=True)
class Caller:
    """An authenticated (or open) caller of the image endpoints."""

    #: Whose lane it queues in: a digest of the key, or the client's address.
    owner: str
    #: The id usage is recorded under: a managed key's id, `static_…` for a static key, or None.
    key_id: str | None = None
    key: KeyInfo | None = None
    #: A managed key's secret digest: the gate confirms the key is still live when it charges.
    digest: str | None = None
    org: str | None = None
    project: str | None = None

    def check_model(self, model: str) -> None:
        """403 when a managed key is bound to other models (CONTRACT §5)."""
        allowed = self.key.models if self.key else None
        if allowed is not None and model not in allowed:
            raise errors.PermissionDeniedError(
                f"The API key {self.key_id} does not have access to the model `{model}`. "
                f"It may use: {', '.join(repr(m) for m in allowed) or 'no models'}.",
                param="model",
            )


class Authenticator:
    """Static keys from the settings and managed keys from the database, checked in that order.

    Image requests need a key when static keys are configured or any managed image key exists;
    otherwise the server is open and a presented key that matches nothing is ignored.
    """

    def __init__(self, static: StaticKeys, admins: StaticKeys, store: KeyStore) -> None:
        self.static = static
        self.admins = admins
        self.store = store

    async def caller(
        self, authorization: str, org: str | None, project: str | None, client: str, *, cached: bool = False
    ) -> Caller:
        """The caller; with `cached`, a managed key may come from the store's memory, and then the
        gate's charge is what refuses it if it has been revoked or rotated since."""
        for header, value in (("OpenAI-Organization", org), ("OpenAI-Project", project)):
            if value is not None and len(value) > MAX_SCOPE:
                raise errors.BadRequestError(
                    f"The {header} header is too long: {len(value)} characters, at most {MAX_SCOPE}.",
                    code="invalid_header",
                )
        presented = _bearer(authorization)
        if presented is None:
            known = self.store.known_any_keys()
            required = self.static.enabled or (
                known if known is not None else await anyio.to_thread.run_sync(self.store.any_keys)
            )
            if required:
                raise errors.AuthenticationError(MISSING_KEY)
            return Caller(owner=client, org=org, project=project)
        probe = digest(presented).hex()
        if self.static.check(presented):
            return Caller(owner=probe[:16], key_id=f"static_{probe[:12]}", org=org, project=project)
        if self.admins.check(presented):
            raise _admin_only()
        key, required = (self.store.cached(probe) if cached else None), True
        if key is None:
            key, required = await anyio.to_thread.run_sync(self.store.lookup, probe)
        if key is not None and key.active:
            if key.admin:
                raise _admin_only()
            _check_binding(key, org, project)
            return Caller(owner=probe[:16], key_id=key.id, key=key, digest=probe,
                          org=org or key.org, project=project or key.project)  # fmt: skip
        if self.static.enabled or required:
            raise _incorrect(mask(presented))
        return Caller(owner=client, org=org, project=project)

    def stale(self, caller: Caller) -> errors.APIError:
        """The 401 for a remembered key that the database says was revoked or rotated since."""
        if caller.digest is not None:
            self.store.forget(caller.digest)
        return _incorrect(caller.key.hint if caller.key else "")

    async def admin(self, authorization: str) -> str:
        """The admin's id (a managed admin key's id, or `static_admin`); 401 or 403 otherwise."""
        presented = _bearer(authorization)
        if presented is None:
            raise errors.AuthenticationError(MISSING_KEY)
        if self.admins.check(presented):
            return f"static_admin_{digest(presented).hex()[:8]}"
        key, _ = await anyio.to_thread.run_sync(self.store.find, presented)
        if key is not None and key.active and key.admin:
            return key.id
        if (key is not None and key.active) or self.static.check(presented):
            raise errors.PermissionDeniedError(
                "This endpoint needs an admin key; the key you provided may only call the image API.",
                code="admin_key_required",
            )
        raise _incorrect(mask(presented))


def _incorrect(hint: str) -> errors.APIError:
    return errors.AuthenticationError(f"Incorrect API key provided: {hint}.", code="invalid_api_key")


def _bearer(header: str) -> str | None:
    scheme, _, key = header.partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


def _admin_only() -> errors.APIError:
    return errors.PermissionDeniedError(
        "Admin keys manage keys and read usage; they cannot call the image endpoints.",
        code="admin_key_not_allowed",
    )


def _check_binding(key: KeyInfo, org: str | None, project: str | None) -> None:
    """A key bound to an organization or project refuses a request that names another one."""
    if key.org is not None and org is not None and org != key.org:
        raise errors.PermissionDeniedError(
            "OpenAI-Organization header should match organization for API key.",
            code="mismatched_organization",
        )
    if key.project is not None and project is not None and project != key.project:
        raise errors.PermissionDeniedError(
            "OpenAI-Project header should match project for API key.", code="mismatched_project"
        )
