"""Writes for the trainer: building frozen preference datasets from the votes, and handing out their bytes."""
from __future__ import annotations

import gzip
import logging
from collections.abc import Mapping
from datetime import date
from typing import Any

from django.db import IntegrityError, transaction

from arena.models import Contender
from config.errors import ApplicationError, ValidationFailed

from . import datasets
from .models import DatasetMode, PreferenceDataset
from .selectors import DatasetFilters, contender_ratings, vote_rows, votes_for_dataset

logger = logging.getLogger(__name__)

MAX_NAME = 200
FILTER_KEYS = tuple(DatasetFilters().as_json())
BOOLEAN_FILTERS = ("exclude_flagged", "exclude_identity_leaks", "dedupe_prompts", "include_named")


class DatasetCorrupt(ApplicationError):
    """The stored bytes no longer hash to the dataset's sha256: never hand them out."""

    status = 500
    code = "dataset_corrupt"


def dataset_filters_from(values: Mapping[str, Any] | None) -> DatasetFilters:
    """Check and normalise filters given as plain values (API or command line); errors name ``filters.<key>``."""
    values = dict(values or {})
    if unknown := sorted(set(values) - set(FILTER_KEYS)):
        raise ValidationFailed(f"unknown filter; known: {', '.join(FILTER_KEYS)}", field=f"filters.{unknown[0]}")
    text = {}
    for name in ("category", "language", "date_from", "date_to"):
        value = values.get(name) or ""
        if isinstance(value, date):
            value = value.isoformat()
        if not isinstance(value, str):
            raise ValidationFailed("must be a string", field=f"filters.{name}")
        text[name] = value.strip()
    for name in ("date_from", "date_to"):
        if text[name]:
            try:
                day = date.fromisoformat(text[name])
            except ValueError:
                raise ValidationFailed("must be a date YYYY-MM-DD", field=f"filters.{name}") from None
            if not date(1970, 1, 1) <= day < date(9999, 12, 31):
                raise ValidationFailed("must be between 1970 and 9998", field=f"filters.{name}")
            text[name] = day.isoformat()
    if text["date_from"] and text["date_to"] and text["date_from"] > text["date_to"]:
        raise ValidationFailed("must not be before date_from", field="filters.date_to")
    contenders = values.get("contenders") or []
    if isinstance(contenders, str) or not isinstance(contenders, list | tuple) \
            or not all(isinstance(c, str) and c.strip() for c in contenders):
        raise ValidationFailed("must be a list of contender names", field="filters.contenders")
    names = tuple(sorted({c.strip() for c in contenders}))
    if names:
        known = set(Contender.objects.filter(name__in=names).values_list("name", flat=True))
        if missing := [n for n in names if n not in known]:
            raise ValidationFailed(f"unknown contender(s): {', '.join(missing)}", field="filters.contenders")
    switches = {}
    for name in BOOLEAN_FILTERS:
        value = values.get(name, getattr(DatasetFilters, name))
        if not isinstance(value, bool):
            raise ValidationFailed("must be true or false", field=f"filters.{name}")
        switches[name] = value
    return DatasetFilters(**text, contenders=names, **switches)


@transaction.atomic
def dataset_build(*, name: str, filters: Mapping[str, Any] | DatasetFilters | None = None,
                  mode: str = DatasetMode.ALL_PAIRS, keep_ties: bool = False) -> PreferenceDataset:
    """Freeze the records of the votes that match ``filters`` now as a named dataset.

    Raises ValidationFailed naming the field: an empty or taken name, an unknown mode, a bad filter, filters
    that match no vote (``filters``), or votes that all drop out (``filters``). Nothing is written then.
    """
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise ValidationFailed("must not be empty", field="name")
    if len(name) > MAX_NAME:
        raise ValidationFailed(f"must be at most {MAX_NAME} characters", field="name")
    if PreferenceDataset.objects.filter(name=name).exists():
        raise ValidationFailed(f"a dataset called {name!r} exists (datasets are frozen: pick a new name)",
                               field="name", code="dataset_exists")
    if mode not in DatasetMode.values:
        raise ValidationFailed(f"must be one of {', '.join(DatasetMode.values)}", field="mode")
    if not isinstance(keep_ties, bool):
        raise ValidationFailed("must be true or false", field="keep_ties")
    if not isinstance(filters, DatasetFilters):
        filters = dataset_filters_from(filters)

    votes, counts = votes_for_dataset(filters)
    if counts["matched"] == 0:
        raise ValidationFailed("no vote matches these filters", field="filters", code="no_votes")
    snapshot_id, ratings = contender_ratings() if mode == DatasetMode.CURRICULUM else (None, {})
    built = datasets.build_records(vote_rows(votes), mode=mode, keep_ties=keep_ties, ratings=ratings)
    counts.update(built.counts)
    if not built.records:
        why = ", ".join(f"{k} {v}" for k, v in counts.items() if v and k not in ("rows", "votes_used", "records"))
        raise ValidationFailed(f"no record left from these filters ({why})", field="filters", code="no_records")
    content = datasets.canonical_jsonl(built.records)
    try:
        with transaction.atomic():
            return PreferenceDataset.objects.create(
                name=name, filters=filters.as_json(), mode=mode, keep_ties=keep_ties, n_records=len(built.records),
                n_votes=len(built.vote_ids), counts=counts, sha256=datasets.sha256_hex(content),
                size_bytes=len(content), vote_ids=built.vote_ids,
                ratings={"snapshot": snapshot_id, "values": ratings} if mode == DatasetMode.CURRICULUM else {},
                # mtime=0: the same content compresses to the same bytes.
                content_gz=gzip.compress(content, compresslevel=6, mtime=0),
            )
    except IntegrityError as exc:   # another build took the name between the check and the insert
        logger.warning("dataset %r refused by the database: %s", name, exc)
        raise ValidationFailed(f"a dataset called {name!r} exists", field="name", code="dataset_exists") from exc


def dataset_bytes(dataset: PreferenceDataset) -> bytes:
    """The dataset's canonical JSONL, exactly as built; raises DatasetCorrupt if it does not match its sha256."""
    raw = (PreferenceDataset.objects.filter(pk=dataset.pk).values_list("content_gz", flat=True).first()
           if "content_gz" in dataset.get_deferred_fields() else dataset.content_gz)
    try:
        content = gzip.decompress(bytes(raw or b""))
    except (OSError, EOFError) as exc:
        raise DatasetCorrupt(f"dataset {dataset.pk}: stored bytes are not gzip ({exc})") from None
    if datasets.sha256_hex(content) != dataset.sha256 or len(content) != dataset.size_bytes:
        raise DatasetCorrupt(f"dataset {dataset.pk}: stored bytes do not match sha256 {dataset.sha256}")
    return content


def dataset_export_trl(dataset: PreferenceDataset) -> bytes:
    """The dataset in TRL's preference format: canonical JSONL of ``{prompt, chosen, rejected}`` rows.

    Pairwise records only: ranking records are expanded into all the pairs they order, tie records and
    split records (p = 0.5) are dropped, and soft labels are not carried (``trainer.datasets.trl_records``).
    """
    return datasets.canonical_jsonl(datasets.trl_records(datasets.parse_jsonl(dataset_bytes(dataset))))
