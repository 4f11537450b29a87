from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from config.errors import ValidationFailed

from .models import Audit, Judge, JudgeRun, Judgment


class JudgeForm(forms.ModelForm):
    class Meta:
        model = Judge
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        from .services import validate_judge_config

        try:
            data["config"] = validate_judge_config(data.get("backend", ""), data.get("config"))
        except ValidationFailed as exc:
            self.add_error("config" if (exc.field or "").startswith("config") else None, exc.message)
        return data


@admin.register(Judge)
class JudgeAdmin(admin.ModelAdmin):
    form = JudgeForm
    list_display = ("name", "backend", "template", "family", "temperature", "created")
    search_fields = ("name",)


@admin.register(JudgeRun)
class JudgeRunAdmin(admin.ModelAdmin):
    list_display = ("id", "judge", "status", "n_done", "n_total", "n_failed", "cost", "created")
    list_filter = ("status", "judge")
    readonly_fields = [f.name for f in JudgeRun._meta.fields]

    def has_add_permission(self, request: Any) -> bool:   # runs are created through the API or judge_run
        return False


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = ("id", "judge", "battle", "order", "replicate", "perturbation", "verdict", "created")
    list_filter = ("judge", "verdict", "perturbation")
    readonly_fields = [f.name for f in Judgment._meta.fields]

    def has_add_permission(self, request: Any) -> bool:
        return False


@admin.register(Audit)
class AuditAdmin(admin.ModelAdmin):
    list_display = ("id", "run", "n_judgments", "created")
    readonly_fields = [f.name for f in Audit._meta.fields]

    def has_add_permission(self, request: Any) -> bool:
        return False
