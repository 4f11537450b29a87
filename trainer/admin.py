from __future__ import annotations

from typing import Any

from django.contrib import admin

from .models import PreferenceDataset


@admin.register(PreferenceDataset)
class PreferenceDatasetAdmin(admin.ModelAdmin):
    """Read-only: datasets are built by `manage.py build_dataset` or the API and never change."""

    list_display = ("name", "mode", "keep_ties", "n_records", "n_votes", "sha256", "created")
    list_filter = ("mode", "keep_ties")
    search_fields = ("name", "sha256")
    exclude = ("content_gz",)   # the bytes: download them from /api/v1/datasets/{id}/records
    readonly_fields = [f.name for f in PreferenceDataset._meta.fields if f.name != "content_gz"]

    def get_queryset(self, request: Any) -> Any:
        return super().get_queryset(request).defer("content_gz")

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
