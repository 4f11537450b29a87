from __future__ import annotations

from django.contrib import admin

from .models import Snapshot, SnapshotRow


class SnapshotRowInline(admin.TabularInline):
    model = SnapshotRow
    extra = 0
    can_delete = False
    readonly_fields = ["contender", "rating", "ci_low", "ci_high", "rank", "rank_ub", "votes", "mu", "sigma", "p_best"]


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    """Snapshots are immutable records of a fit: viewable, never edited."""

    list_display = ["id", "method", "n_votes", "created", "duration_ms", "data_hash"]
    list_filter = ["method"]
    inlines = [SnapshotRowInline]
    readonly_fields = ["config_key", "config", "method", "params", "data_hash", "n_votes", "created", "duration_ms",
                       "models_order", "matrices", "style_coefficients"]

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False
