from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from .models import Battle, BattleSlot, Contender, PoolResponse, Prompt, Vote, VoteFlag, Voter
from .sources import SourceConfigError, validate_source_config
from .tallies import votes_reclassified


class ContenderAdminForm(forms.ModelForm):
    """Refuses a source config that no source could be built from, with the problem shown on the field."""

    class Meta:
        model = Contender
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind = cleaned.get("source_kind")
        if kind is None or "source_config" in self.errors:
            return cleaned  # the field's own error is already shown
        try:
            cleaned["source_config"] = validate_source_config(kind, cleaned.get("source_config"))
        except SourceConfigError as exc:
            if exc.field == "source_kind":
                self.add_error("source_kind", exc.message)
            else:
                key = (exc.field or "").removeprefix("source_config").lstrip(".")
                self.add_error("source_config", f"{key}: {exc.message}" if key else exc.message)
        return cleaned


@admin.register(Contender)
class ContenderAdmin(admin.ModelAdmin):
    form = ContenderAdminForm
    list_display = ["name", "organization", "license", "family", "source_kind", "active", "sampling_weight"]
    list_filter = ["active", "source_kind", "organization"]
    search_fields = ["name", "organization", "family"]


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["short_text", "category", "language", "created"]
    list_filter = ["category", "language"]
    search_fields = ["text", "sha256"]
    readonly_fields = ["sha256"]

    @admin.display(description="text")
    def short_text(self, prompt: Prompt) -> str:
        return prompt.text[:80]


@admin.register(Voter)
class VoterAdmin(admin.ModelAdmin):
    list_display = ["key", "user", "created", "flagged", "flag_reason"]
    list_filter = ["flagged"]
    search_fields = ["key"]
    readonly_fields = ["ip_hash"]

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        # Flagging or unflagging a voter moves its votes in or out of the default leaderboards' tallies.
        with votes_reclassified(voter_ids=[obj.pk] if change and "flagged" in form.changed_data else []):
            super().save_model(request, obj, form, change)


class BattleSlotInline(admin.TabularInline):
    """A voted battle is a record (the database refuses changes to it): its slots are shown, not edited."""

    model = BattleSlot
    extra = 0
    raw_id_fields = ["contender"]

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return obj is None or obj.status != "voted"

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return obj is None or obj.status != "voted"

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return obj is None or obj.status != "voted"


@admin.register(Battle)
class BattleAdmin(admin.ModelAdmin):
    list_display = ["id", "k", "status", "generation", "prompt_source", "turns", "anonymous", "voter", "created",
                    "revealed_at", "void_reason", "identity_leak"]
    list_filter = ["status", "generation", "prompt_source", "k", "anonymous"]
    raw_id_fields = ["prompt", "voter"]
    inlines = [BattleSlotInline]
    date_hierarchy = "created"

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is not None and obj.status == "voted":
            return ["prompt", "k", "voter", "anonymous", "created", "revealed_at", "status", "prompt_source",
                    "generation", "generation_started", "turns", "void_reason", "identity_leak"]
        return []


class VoteFlagInline(admin.TabularInline):
    model = VoteFlag
    extra = 0


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    """Votes are append-only: the admin may flag them but not edit what was voted."""

    list_display = ["battle", "voter", "kind", "outcome", "best_position", "created"]
    list_filter = ["kind", "outcome", "flags__code", "voter__flagged"]
    raw_id_fields = ["battle", "voter"]
    inlines = [VoteFlagInline]
    readonly_fields = ["battle", "voter", "created", "kind", "outcome", "best_position", "ranking", "aspects",
                       "rationale", "idempotency_key", "fingerprint", "contender_a", "contender_b", "anonymous"]

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def save_related(self, request, form, formsets, change):  # type: ignore[no-untyped-def]
        with votes_reclassified(vote_ids=[form.instance.pk]):  # the inline may add or remove its flags
            super().save_related(request, form, formsets, change)


@admin.register(VoteFlag)
class VoteFlagAdmin(admin.ModelAdmin):
    """A flag added, moved to another vote or removed reclassifies the votes concerned (``arena.tallies``)."""

    list_display = ["vote", "code", "reason", "created"]
    list_filter = ["code"]
    raw_id_fields = ["vote"]

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        votes = {obj.vote_id} | ({form.initial["vote"]} if change and form.initial.get("vote") else set())
        with votes_reclassified(vote_ids=votes):
            super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):  # type: ignore[no-untyped-def]
        with votes_reclassified(vote_ids=[obj.vote_id]):
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        with votes_reclassified(vote_ids=list(queryset.values_list("vote_id", flat=True))):
            super().delete_queryset(request, queryset)


@admin.register(PoolResponse)
class PoolResponseAdmin(admin.ModelAdmin):
    list_display = ["contender", "prompt", "token_count"]
    list_filter = ["contender"]
    raw_id_fields = ["prompt"]
    search_fields = ["text", "prompt__text"]
