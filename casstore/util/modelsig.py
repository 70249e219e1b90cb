"""OpenSSF model signing (the ``model-signing`` package) next to casstore's own signatures.

``model_signing`` signs a model directory as a whole: a sigstore bundle (DSSE envelope,
in-toto statement of every file's digest), which ``model_signing verify key DIR
--signature SIG --public_key KEY.pem`` checks.  casstore uses the same key as for its
commit signatures (``cas.signingKey``, an SSH key file), converted to the PEM form
``model_signing`` reads; ``model_signing`` takes elliptic-curve keys only
(``ecdsa-sha2-nistp256``, ``-nistp384``, ``-nistp521``), so an ed25519 key is refused
with a message that says so.  Verification tries each elliptic-curve key of the
allowed signers file and names the principal whose key verified.

Optional: ``pip install 'casstore[modelsigning]'`` (model-signing pulls in sigstore).
"""

from __future__ import annotations

import os
import shlex
import tempfile
from typing import Any

from ..errors import SigningError

#: the signature's name inside a downloaded directory: model_signing's own default
SIGNATURE_NAME = "model.sig"
_EC_TYPES = ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")


def _library() -> Any:
    try:
        import model_signing
    except ImportError as e:
        from .install import install_hint

        raise SigningError(f"OpenSSF model signing is not installed ({e}): "
                           f"{install_hint('modelsigning')}") from None
    return model_signing


def _pem_private(ssh_key: str, out: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        with open(os.path.expanduser(ssh_key), "rb") as f:
            key = serialization.load_ssh_private_key(f.read(), None)
    except FileNotFoundError:
        raise SigningError(f"signing key {ssh_key!r}: no such file") from None
    except (ValueError, TypeError) as e:
        raise SigningError(f"signing key {ssh_key!r}: not an unencrypted OpenSSH private key ({e}); "
                           "model_signing needs the private key itself, not ssh-agent") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningError(f"signing key {ssh_key!r}: OpenSSF model signing takes elliptic-curve keys only "
                           "(ssh-keygen -t ecdsa), not this key type")
    with open(out, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def public_pem(ssh_public: str) -> bytes:
    """An SSH public key line (``ecdsa-sha2-nistp256 AAAA...``) as the PEM model_signing reads."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_public_key(ssh_public.encode())
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _hashing(lib: Any, model: str, signature: str) -> Any:
    """model_signing's hashing settings as its CLI makes them: the signature file, when it lies
    inside the model directory, is not part of the model (git's files neither, the default)."""
    ignored = []
    sig, root = os.path.abspath(signature), os.path.abspath(model)
    if os.path.isdir(root) and sig.startswith(root + os.sep):
        ignored.append(os.path.relpath(sig, root))
    return lib.hashing.Config().set_ignored_paths(paths=ignored, ignore_git_paths=True)


def sign_directory(directory: str, ssh_key: str, signature: str | None = None) -> str:
    """Sign every file of ``directory`` as ``model_signing sign key`` does; returns the
    signature's path (default ``directory/model.sig``, which verification skips).

    Raises:
        SigningError: model-signing is not installed, or the key cannot be used.
    """
    lib = _library()
    path = signature or os.path.join(directory, SIGNATURE_NAME)
    with tempfile.TemporaryDirectory(prefix="cas-modelsig-") as tmp:
        pem = os.path.join(tmp, "key.pem")
        _pem_private(ssh_key, pem)
        lib.signing.Config().use_elliptic_key_signer(private_key=pem).set_hashing_config(
            _hashing(lib, directory, path)).sign(directory, path)
    return path


def allowed_ec_keys(allowed_signers: str) -> list[tuple[str, str]]:
    """(principals, SSH public key line) of every elliptic-curve key in an allowed signers file."""
    out = []
    with open(allowed_signers, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                words = shlex.split(line)
            except ValueError:
                continue
            for i, w in enumerate(words[1:-1], start=1):
                if w in _EC_TYPES:
                    out.append((words[0], f"{w} {words[i + 1]}"))
                    break
    return out


def verify_directory(path: str, signature: str, allowed_signers: str | None) -> str:
    """Check a model_signing signature over ``path`` (a directory or a file) with each
    elliptic-curve key of the allowed signers file; returns the principals of the key that
    verified.

    Raises:
        SigningError: no allowed signers file, no key verifies, or the files do not match.
    """
    lib = _library()
    if allowed_signers is None or not os.path.isfile(allowed_signers):
        raise SigningError("checking a model signature needs an allowed signers file "
                           "(cas.allowedSigners or git's gpg.ssh.allowedSignersFile)")
    keys = allowed_ec_keys(allowed_signers)
    if not keys:
        raise SigningError(f"{allowed_signers} has no elliptic-curve key: model_signing signatures "
                           "are made with ecdsa keys")
    errors = []
    with tempfile.TemporaryDirectory(prefix="cas-modelsig-") as tmp:
        for n, (principals, line) in enumerate(keys):
            pem = os.path.join(tmp, f"{n}.pem")
            with open(pem, "wb") as f:
                f.write(public_pem(line))
            try:
                lib.verifying.Config().use_elliptic_key_verifier(public_key=pem).set_hashing_config(
                    _hashing(lib, path, signature)).verify(path, signature)
                return principals
            except Exception as e:  # the library raises ValueError and its own errors
                errors.append(f"{principals}: {e}")
    raise SigningError(f"model signature {signature} does not verify {path} with any allowed key "
                       f"({'; '.join(errors)[:500]})")
