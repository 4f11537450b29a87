"""Staff pages for training jobs: the list, and one job with its progress bar, curves and model card."""
from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from .charts import metric_chart
from .models import TrainingJob


@staff_member_required
def jobs_page(request: HttpRequest) -> HttpResponse:
    jobs = TrainingJob.objects.select_related("dataset", "contender").order_by("-created")[:100]
    return render(request, "trainer/jobs.html", {"jobs": jobs})


@staff_member_required
def job_page(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(TrainingJob.objects.select_related("dataset", "contender"), pk=job_id)
    progress = job.progress or {}
    total = progress.get("total_steps") or 0
    percent = round(100 * min(progress.get("step", 0) / total, 1.0)) if total else (100 if job.status == "succeeded"
                                                                                      else 0)
    charts = [c for c in (metric_chart(job.metrics, "loss", "Loss"),
                          metric_chart(job.metrics, "reward_accuracy", "Reward accuracy")) if c is not None]
    return render(request, "trainer/job.html", {"job": job, "progress": progress, "percent": percent,
                                                "charts": charts})
