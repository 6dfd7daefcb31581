"""PostgreSQL passwords sent as SCRAM-SHA-256 verifiers, never as plain text.

`ALTER ROLE ... PASSWORD 'plain'` puts the password in the statement, where the server's statement log
(RDS logs slow statements, see the parameter group) or pg_stat_statements could keep it. PostgreSQL
accepts a pre-computed verifier instead (RFC 5802 / RFC 7677), which is what it would store anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

ITERATIONS = 4096  # PostgreSQL's default scram_iterations


def scram_sha256_verifier(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The verifier PostgreSQL stores for `password` (ASCII passwords: SASLprep leaves them unchanged)."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    encode = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{encode(salt)}${encode(stored_key)}:{encode(server_key)}"
