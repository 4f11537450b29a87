"""Judge audit core: how far an LLM judge can be trusted, and which way it leans (numpy only; no Django).

Entry points
------------
::

    read_judgments(lines: Iterable[str]) -> JudgmentTable            # JSONL lines
    read_judgments_bytes(data: bytes) -> JudgmentTable               # a whole (decompressed) file, fast path
    judgments_from_records(records: Iterable[dict]) -> JudgmentTable # dicts, e.g. built from the database
    audit_judgments(table, *, seed=0, bootstrap=200, level=0.95, length_threshold=30,
                    human_ratings=None) -> dict                      # the report (JSON-able, no NaN)

Bad rows raise :class:`AuditInputError` ``(line, field, message)`` with the 1-based line or record
number. The input row format and the output schema are documented in :mod:`.data` and
:mod:`.report`; the statistical definitions in each topic module: :mod:`.position`, :mod:`.length`
(length and markdown style, LC win rates), :mod:`.self_preference`, :mod:`.agreement`,
:mod:`.perturbations`, :mod:`.ranking`; the tools in :mod:`.stats`.

CLI: ``python -m judges.audit FILE.jsonl`` (see :mod:`judges.audit`).
"""
from __future__ import annotations

from .data import AuditInputError, JudgmentTable, judgments_from_records, read_judgments, read_judgments_bytes
from .report import SCHEMA_VERSION, audit_judgments
from .stats import ConvergenceError

__all__ = [
    "SCHEMA_VERSION",
    "AuditInputError",
    "ConvergenceError",
    "JudgmentTable",
    "audit_judgments",
    "judgments_from_records",
    "read_judgments",
    "read_judgments_bytes",
]
