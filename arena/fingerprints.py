"""Content hashes that make prompts and votes deduplicable across imports and exports."""
from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Sequence
from datetime import datetime


def prompt_sha256(text: str) -> str:
    """Hash of the prompt after Unicode NFC and whitespace folding: trivially different copies collide."""
    normalised = " ".join(unicodedata.normalize("NFC", text).split())
    return hashlib.sha256(normalised.encode()).hexdigest()


def epoch_microseconds(moment: datetime) -> int:
    """Whole microseconds since the epoch: the precision the database keeps, so hashes survive a round trip."""
    return round(moment.timestamp() * 1_000_000)


def vote_fingerprint_base(
    *, voter_key: str, models: Sequence[str], verdict_key: str, created: datetime | None, anonymous: bool,
    prompt_text: str = "", external_id: str = "",
) -> str:
    """Identity of a vote event, independent of database ids.

    Two votes share it only if the same voter gave the same verdict on the same models in the same
    order at the same microsecond, on the same prompt (when known). Aspects and rationale are left out
    on purpose: formats that cannot carry them (FastChat) must still re-import onto the same vote.
    ``created`` is None for a file row without a time (the import stamps it, but the identity must not
    change with the day of the import). A release that names its battles (``external_id``, LMArena's
    ``id``) makes the id the identity, whatever else the row says.
    """
    if external_id:
        payload = json.dumps(["id", external_id], separators=(",", ":"), ensure_ascii=False)
    else:
        payload = json.dumps(
            [voter_key, list(models), verdict_key, epoch_microseconds(created) if created else None, anonymous,
             prompt_sha256(prompt_text) if prompt_text else ""],
            separators=(",", ":"), ensure_ascii=False,
        )
    # 128 bits: collisions stay negligible at billions of votes, and a short key keeps the unique index small.
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def vote_fingerprint(base: str, occurrence: int = 0) -> str:
    """The stored fingerprint; ``occurrence`` tells apart genuinely repeated rows of one file (0, 1, ...)."""
    return f"{base}:{occurrence}"
