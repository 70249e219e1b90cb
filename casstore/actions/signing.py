"""What the Store's signature methods do: the signature policy applied before a model's bytes
are read, whether a store signs or checks at all, and OpenSSF model signatures over a
directory (docs/signing.md).  The checks themselves are model/signatures.py's.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

from ..errors import SigningError, UnsignedModelError, UnsignedModelWarning
from ..model.reading import StoredModel
from ..model.signatures import Verifier
from ..util.sshsig import signing_key, signs_by_default


def policy(store_policy: str, require_signed: bool | None) -> str:
    """``off``, ``warn`` or ``refuse``: ``require_signed`` (a call's) over the store's ``cas.requireSigned``."""
    return store_policy if require_signed is None else ("refuse" if require_signed else "off")


def check_signed(verifier: Callable[[], Verifier], m: StoredModel, chosen: str) -> StoredModel:
    """``m`` if the ``chosen`` policy lets its bytes be read: a commit not signed by an allowed
    key raises UnsignedModelError under ``refuse``, warns (UnsignedModelWarning) under ``warn``."""
    if chosen != "off":
        verdict = verifier().commit(m.commit, m.manifest.domain)
        if not verdict.ok:
            err = UnsignedModelError(m.manifest.domain, m.manifest.model_id, m.commit.decode(), verdict.describe())
            if chosen == "refuse":
                raise err
            warnings.warn(str(err), UnsignedModelWarning, stacklevel=4)  # the caller of Store.load ...
    return m


def signing_in_use(path: str, store_policy: str, verifier: Verifier) -> bool:
    """Whether the store at ``path`` signs or checks signatures (``Store.signing_in_use``)."""
    return store_policy != "off" or verifier.allowed is not None or signs_by_default(path)


def sign_directory(path: str, directory: str | os.PathLike[str]) -> str:
    """``Store.sign_directory``: ``directory/model.sig`` written with the store's signing key.

    Raises:
        SigningError: no key, a key model_signing cannot use, or model-signing not installed.
    """
    from ..util.modelsig import sign_directory

    key = signing_key(path)
    if key is None:
        raise SigningError("signing needs a key: `cas config cas.signingKey ~/.ssh/id_ecdsa` "
                           "(or git's user.signingKey)")
    return sign_directory(os.fspath(directory), key)
