"""Personal-data keys (个人信息密钥): one data key per record, wrapped by the master key.

The data keys live in their own table, never in the event tables: destroying one (the only
DELETE the ledger ever issues) makes that record's personal data unreadable for good, while the
events, their hashes and every proof stay byte-for-byte the same (crypto-shredding).
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.cipher import AESCipher

from domain.personal import SEALED_PREFIX
from store.recorders import KEYS_TABLE

CACHE_SECONDS = 60.0  # an erasure reaches other processes' caches within this time
LOOKUP_BATCH = 500  # subjects per key lookup (SQLite allows 999 parameters in old builds)


_NONCE = 12
_TAG = 16


class GcmCipher:
    """AES-GCM with the byte layout of the library's ``AESCipher`` (nonce 12 ‖ tag 16 ‖ ciphertext).

    ``AESCipher`` (pycryptodome) builds a new GCM object, key schedule and hash subkey included, for
    every call: ~80 µs per sealed field or wrapped key, the largest cost of a command after the
    commit. OpenSSL's ``AESGCM`` (the ``cryptography`` package, already a dependency) keeps the key
    schedule and costs ~1 µs. Same algorithm, nonce size and tag size, so the bytes are
    interchangeable both ways (tested): existing stores read as before.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        AESCipher.check_key_size(len(key))
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, plaintext, None)  # ciphertext ‖ tag
        return nonce + sealed[-_TAG:] + sealed[:-_TAG]

    def decrypt(self, ciphertext: bytes) -> bytes:
        if len(ciphertext) < _NONCE + _TAG:
            raise ValueError("Damaged cipher text: invalid nonce or tag length")
        nonce, tag, encrypted = ciphertext[:_NONCE], ciphertext[_NONCE : _NONCE + _TAG], ciphertext[_NONCE + _TAG :]
        try:
            return self._aead.decrypt(nonce, encrypted + tag, None)
        except InvalidTag:
            raise ValueError("Cipher text is damaged: MAC check failed") from None


def cipher_for(key: bytes) -> GcmCipher:
    """AES-GCM keyed with raw bytes (the library's ``AESCipher`` format)."""
    return GcmCipher(key)


def load_master_key(environ: dict[str, str] | None = None, *, create: bool = False) -> bytes:
    """The master key: ``LEDGER_CIPHER_KEY`` (base64), else the file at ``LEDGER_KEY_FILE`` (./ledger.key).

    ``create`` makes a new key file (mode 0600) when none is configured — ``ledger init`` does that.
    """
    env = os.environ if environ is None else environ
    inline = env.get("LEDGER_CIPHER_KEY")
    if inline:
        key = base64.b64decode(inline)
    else:
        path = Path(env.get("LEDGER_KEY_FILE", "ledger.key"))
        if not path.exists():
            if not create:
                raise FileNotFoundError(
                    f"no cipher key: set LEDGER_CIPHER_KEY or LEDGER_KEY_FILE to the store's key"
                    f" (`ledger init` creates {path} for a new store only)"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(AESCipher.create_key(32) + "\n")
        key = base64.b64decode(path.read_text().strip())
    AESCipher.check_key_size(len(key))
    return key


def check_master_key(master_key: bytes | None, connect: Callable[[], Any]) -> None:
    """Refuse (``ValueError``) a master key that does not open the data keys the store already holds, or none
    (a new one about to be made): personal data sealed under the store's key would no longer read, and data sealed
    from then on would need the new one. Checked on one wrapped key; a store without personal data takes any."""
    conn = connect()
    try:
        row = conn.execute(f"SELECT wrapped FROM {KEYS_TABLE} LIMIT 1").fetchone()
    finally:
        conn.close()
    if row is None:
        return
    if master_key is not None:
        try:
            cipher_for(master_key).decrypt(bytes(row[0]))
            return
        except ValueError:
            pass  # another key's data key: MAC check failed
    raise ValueError(
        "this store holds personal data sealed under a master key not configured here: set"
        " LEDGER_CIPHER_KEY or LEDGER_KEY_FILE to that key (a new key would leave the data unreadable)"
    )


class KeyVault:
    """Seals personal fields with per-record keys kept in ``ledger_personal_keys``.

    ``connect`` opens an autocommit DB-API connection; ``placeholder`` is ``?`` or ``%s``.
    """

    def __init__(self, master_key: bytes, connect: Callable[[], Any], placeholder: str) -> None:
        self._master = cipher_for(master_key)
        self._connect = connect
        self._conn: Any = None
        self._p = placeholder
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, GcmCipher | None]] = {}

    def seal(self, subject: str, plaintext: str) -> str:
        cipher = self._key(subject, create=True)
        assert cipher is not None
        return SEALED_PREFIX + base64.b64encode(cipher.encrypt(plaintext.encode())).decode()

    def unseal(self, subject: str, sealed: str) -> str | None:
        cipher = self._key(subject, create=False)
        if cipher is None:
            return None
        return cipher.decrypt(base64.b64decode(sealed[len(SEALED_PREFIX) :])).decode()

    def prepare(self, subjects: list[str], created: Collection[str] = ()) -> list[tuple[str, bytes]]:
        """New data keys for subjects without one, cached now and stored by the recorder with the events.

        Subjects of records the save creates (``created``) get a key without a look-up; the others,
        if not cached, are looked up in one query per ``LOOKUP_BATCH`` (a bulk save of 2,000 events
        names ~1,000 records: one round trip, not one each).
        """
        now = time.monotonic()
        fresh: list[tuple[str, bytes]] = []
        with self._lock:
            unknown = []
            for subject in subjects:
                hit = self._cache.get(subject)
                if hit is None or hit[0] <= now:
                    if subject in created:
                        fresh.append(self._new_key(subject, now))
                    else:
                        unknown.append(subject)
                elif hit[1] is None:
                    fresh.append(self._new_key(subject, now))
            for i in range(0, len(unknown), LOOKUP_BATCH):
                chunk = unknown[i : i + LOOKUP_BATCH]
                marks = ", ".join([self._p] * len(chunk))
                sql = f"SELECT subject, wrapped FROM {KEYS_TABLE} WHERE subject IN ({marks})"
                stored = {row[0]: bytes(row[1]) for row in self._execute(sql, tuple(chunk)).fetchall()}
                for subject in chunk:
                    wrapped = stored.get(subject)
                    if wrapped is None:
                        fresh.append(self._new_key(subject, now))
                    else:
                        self._cache[subject] = (now + CACHE_SECONDS, cipher_for(self._master.decrypt(wrapped)))
        return fresh

    def _new_key(self, subject: str, now: float) -> tuple[str, bytes]:
        # Called with the lock held: cache a new data key, answer it wrapped.
        data_key = os.urandom(32)
        self._cache[subject] = (now + CACHE_SECONDS, cipher_for(data_key))
        return subject, self._master.encrypt(data_key)

    def forget(self, subjects: list[str]) -> None:
        with self._lock:
            for subject in subjects:
                self._cache.pop(subject, None)

    def destroy(self, subject: str) -> bool:
        with self._lock:
            self._cache.pop(subject, None)
            cur = self._execute(f"DELETE FROM {KEYS_TABLE} WHERE subject = {self._p}", (subject,))
            return bool(cur.rowcount)

    def _key(self, subject: str, *, create: bool) -> GcmCipher | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(subject)
            if hit and hit[0] > now and (hit[1] is not None or not create):
                return hit[1]
            row = self._execute(f"SELECT wrapped FROM {KEYS_TABLE} WHERE subject = {self._p}", (subject,)).fetchone()
            if row is None and create:
                # A save outside Ledger.save (which prepares keys) stores the key on its own.
                wrapped = self._master.encrypt(os.urandom(32))
                self._execute(
                    f"INSERT INTO {KEYS_TABLE} (subject, wrapped) VALUES ({self._p}, {self._p}) ON CONFLICT DO NOTHING",
                    (subject, wrapped),
                )
                row = self._execute(
                    f"SELECT wrapped FROM {KEYS_TABLE} WHERE subject = {self._p}", (subject,)
                ).fetchone()
            cipher = cipher_for(self._master.decrypt(bytes(row[0]))) if row else None
            self._cache[subject] = (now + CACHE_SECONDS, cipher)
            return cipher

    def _execute(self, sql: str, params: tuple[Any, ...]) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        try:
            return self._conn.execute(sql, params)
        except Exception:
            # A dropped connection (server restart) is reopened once; other errors surface.
            self._conn = self._connect()
            return self._conn.execute(sql, params)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
