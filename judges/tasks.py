"""Judge runs as django-tasks tasks (``manage.py db_worker``): execute, then audit when every call is made."""
from __future__ import annotations

from typing import Any

from django_tasks import task


@task()
def judge_run_task(run_id: int) -> dict[str, Any]:
    """Execute (or resume) a run; a run that succeeds is audited at once."""
    from .services import audit_create, judge_run_execute

    run = judge_run_execute(run_id=run_id)
    summary: dict[str, Any] = {"run": run.pk, "status": run.status, "done": run.n_done, "total": run.n_total,
                               "failed": run.n_failed}
    if run.status == "succeeded":
        summary["audit"] = audit_create(run=run).pk
    return summary
