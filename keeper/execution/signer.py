"""The keeper's one signing key: loaded once from an env var or an encrypted keystore, never shown.

The key lives only inside eth-account's ``LocalAccount`` and the coincurve key made from it, held in
private slots. Nothing here
formats it: ``repr`` shows the address, load errors name the *source* (variable name, file path)
and are raised outside the ``except`` block, so no chained exception (whose message could quote the
key or the password) travels with them. ``sign`` refuses any chain id but the configured one, so a
transaction built for another chain cannot be replayed from this key by mistake.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import coincurve
import rlp  # type: ignore[import-untyped]
import structlog
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from keeper.errors import Halt, UsageError

if TYPE_CHECKING:
    from keeper.config import SignerConfig

log = structlog.get_logger(__name__)

_KEY_HEX = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")


def _fail(message: str) -> NoReturn:
    raise UsageError(message)


class Signer:
    """Signs EIP-1559 transactions for exactly one chain id."""

    __slots__ = ("_account", "_secret", "chain_id")

    def __init__(self, account: LocalAccount, chain_id: int) -> None:
        if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
            raise ValueError(f"signer: chain id must be a positive integer, got {chain_id!r}")
        self._account = account
        self._secret = coincurve.PrivateKey(bytes(account.key))
        """The same key for `sign_liquidation`'s direct path (libsecp256k1, as eth-keys uses)."""
        self.chain_id = chain_id

    @classmethod
    def from_key(cls, key_hex: str, chain_id: int, *, source: str = "private key") -> Signer:
        """A signer from a 32-byte hex key (``0x`` optional); ``source`` names where it came from."""
        account: LocalAccount | None = None
        text = key_hex.strip() if isinstance(key_hex, str) else ""
        if _KEY_HEX.fullmatch(text):
            try:
                account = Account.from_key(text)
            except Exception:  # eth-keys range errors; the message is not ours to forward
                account = None
        if account is None:
            _fail(f"signer: {source} is not a valid private key (expected 32 bytes of hex, 0x optional)")
        signer = cls(account, chain_id)
        log.info("signer_loaded", source=source, address=signer.address, chain_id=chain_id)
        return signer

    @classmethod
    def from_keystore(cls, path: Path, password_path: Path, chain_id: int) -> Signer:
        """A signer from a Web3 Secret Storage (v3) keystore, decrypted with the password file.

        One trailing newline is stripped from the password file, as editors and ``echo`` add one.
        """
        keystore = _read_text(path, "keystore")
        password = _read_text(password_path, "password file").removesuffix("\n").removesuffix("\r")
        try:
            keyfile: Any = json.loads(keystore)
        except ValueError:
            keyfile = None
        if not isinstance(keyfile, dict):
            _fail(f"signer: keystore {path} is not a JSON keystore object")
        key: bytes | None = None
        try:
            key = bytes(Account.decrypt(keyfile, password))
        except Exception:  # MAC mismatch (wrong password) or a malformed keystore
            key = None
        if key is None:
            _fail(
                f"signer: cannot decrypt keystore {path} (wrong password in {password_path}, or corrupt file)"
            )
        return cls.from_key("0x" + key.hex(), chain_id, source=f"keystore {path}")

    @classmethod
    def from_config(cls, config: SignerConfig, chain_id: int, environ: Mapping[str, str]) -> Signer:
        """The configured source: keystore + password file if set, else the named env variable.

        ``environ`` is passed in (the CLI gives ``os.environ``) so this package never reads the
        process environment itself.
        """
        if config.keystore is not None and config.password_file is not None:
            return cls.from_keystore(config.keystore, config.password_file, chain_id)
        name = config.private_key_env
        if name is None:
            _fail("signer: no key source configured (set private_key_env, or keystore and password_file)")
        value = environ.get(name)
        if not value:
            _fail(f"signer: environment variable {name} is not set")
        return cls.from_key(value, chain_id, source=f"environment variable {name}")

    @property
    def address(self) -> str:
        """The checksummed address transactions from this signer come from."""
        return str(self._account.address)

    def sign(self, tx: Mapping[str, Any]) -> tuple[bytes, str]:
        """Sign an EIP-1559 transaction dict; returns the raw bytes and the ``0x`` transaction hash.

        A missing ``chainId`` is filled with the configured one; a different one raises ``Halt``:
        being asked to sign for another chain means the wiring is wrong, and the daemon must stop.
        """
        chain_id = tx.get("chainId", self.chain_id)
        if type(chain_id) is not int or chain_id != self.chain_id:
            raise Halt(
                f"signer: refusing to sign for chain id {chain_id!r}; configured chain id is {self.chain_id}"
            )
        signed = self._account.sign_transaction({**tx, "chainId": self.chain_id})
        return bytes(signed.raw_transaction), signed.hash.to_0x_hex()

    def sign_liquidation(
        self, nonce: int, to: str, data: bytes, gas: int, max_fee_per_gas: int, max_priority_fee_per_gas: int
    ) -> tuple[bytes, str]:
        """`sign` for the keeper's own transactions (EIP-1559, no value, no access list, this chain),
        built and signed directly: the same bytes (RFC 6979 signatures are deterministic, and a test
        compares them), in ~0.2 ms instead of eth-account's ~2 ms of dict validation per transaction,
        which is most of the time between a block's plan and its first wave going out."""
        body = [
            self.chain_id,
            nonce,
            max_priority_fee_per_gas,
            max_fee_per_gas,
            gas,
            bytes.fromhex(to[2:]),
            0,
            data,
            [],
        ]
        unsigned = b"\x02" + rlp.encode(body)
        signature = self._secret.sign_recoverable(keccak(unsigned), hasher=None)
        r, s, y_parity = (
            int.from_bytes(signature[:32], "big"),
            int.from_bytes(signature[32:64], "big"),
            signature[64],
        )
        raw = b"\x02" + rlp.encode([*body, y_parity, r, s])
        return raw, "0x" + keccak(raw).hex()

    def __repr__(self) -> str:
        return f"Signer(address={self.address}, chain_id={self.chain_id})"

    def __reduce__(self) -> NoReturn:
        """Refuse to pickle or copy: a serialized signer would be the key written somewhere."""
        raise TypeError("Signer holds a private key and cannot be pickled or copied")


def _read_text(path: Path, what: str) -> str:
    text: str | None = None
    reason = ""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        reason = f": {exc.strerror}" if exc.strerror else ""
    except UnicodeDecodeError:
        reason = ": not UTF-8 text"
    if text is None:
        _fail(f"signer: cannot read {what} {path}{reason}")
    return text
