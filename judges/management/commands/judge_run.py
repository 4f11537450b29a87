"""python manage.py judge_run --judge NAME [filters] : judge battles in both orders, then audit the run."""
from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from config.errors import ApplicationError
from judges.models import Judge, JudgeRun, RunStatus
from judges.perturbations import PERTURBATIONS
from judges.services import audit_create, judge_run_create, judge_run_execute, run_filters_from


class Command(BaseCommand):
    help = ("Run a judge over voted battles (each judged with its answers in both orders), store the judgments "
            "(cached: a repeated call is not made again) and audit the run against the human votes. "
            "--resume RUN_ID continues a run that failed or whose worker died.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--judge", help="the judge's name (create judges in the admin or the API)")
        parser.add_argument("--resume", type=int, metavar="RUN_ID", help="execute an existing run again")
        parser.add_argument("--category", default="")
        parser.add_argument("--language", default="")
        parser.add_argument("--date-from", default="", help="YYYY-MM-DD, inclusive")
        parser.add_argument("--date-to", default="", help="YYYY-MM-DD, inclusive")
        parser.add_argument("--contender", action="append", default=[],
                            help="only battles whose every answer comes from these contenders (repeatable)")
        parser.add_argument("--k", type=int, help="only battles with this many answers")
        parser.add_argument("--limit", type=int, help="at most this many battles, the most recent first")
        parser.add_argument("--include-flagged", action="store_true",
                            help="also battles whose vote or voter the arena flagged")
        parser.add_argument("--replicates", type=int, default=1, help="plain judgments per battle and order")
        parser.add_argument("--perturbation", action="append", default=[], choices=sorted(PERTURBATIONS),
                            help="also judge each battle with this perturbation (repeatable)")
        parser.add_argument("--concurrency", type=int, default=4, help="judge calls in flight at once")
        parser.add_argument("--no-audit", action="store_true", help="do not audit the run when it succeeds")
        parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap rounds of the audit")
        parser.add_argument("--seed", type=int, default=0, help="seed of the audit's bootstrap")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            run = self._run(options)
            bar = tqdm(total=run.n_total, unit="call", disable=not sys.stderr.isatty(), file=sys.stderr)

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            run = judge_run_execute(run_id=run.pk, progress=progress)
            bar.close()
        except ApplicationError as exc:
            raise CommandError(f"{exc.field}: {exc.message}" if exc.field else exc.message) from None
        self.stdout.write(f"run {run.pk}: {run.status}; {run.n_done}/{run.n_total} judgments "
                          f"({run.n_cached} from the cache, {run.n_failed} failed); "
                          f"tokens {run.prompt_tokens} in / {run.completion_tokens} out; cost {run.cost}")
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"run {run.pk} {run.status}: {run.error} (resume with --resume {run.pk})")
        if not options["no_audit"]:
            audit = audit_create(run=run, seed=options["seed"], bootstrap=options["bootstrap"])
            self.stdout.write(f"audit {audit.pk}: /judges/audits/{audit.pk} ({audit.n_judgments} judgment rows)")

    def _run(self, options: dict[str, Any]) -> JudgeRun:
        if options["resume"] is not None:
            run = JudgeRun.objects.filter(pk=options["resume"]).first()
            if run is None:
                raise CommandError(f"no run {options['resume']}")
            return run
        if not options["judge"]:
            raise CommandError("give --judge NAME (or --resume RUN_ID)")
        judge = Judge.objects.filter(name=options["judge"]).first()
        if judge is None:
            names = ", ".join(Judge.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"no judge called {options['judge']!r} (judges: {names})")
        filters = run_filters_from({
            "category": options["category"], "language": options["language"], "date_from": options["date_from"],
            "date_to": options["date_to"], "contenders": options["contender"], "k": options["k"],
            "limit": options["limit"], "exclude_flagged": not options["include_flagged"],
        })
        return judge_run_create(judge=judge, filters=filters, replicates=options["replicates"],
                                perturbations=options["perturbation"], concurrency=options["concurrency"])
