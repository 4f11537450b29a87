"""python manage.py detect_anomalous_voters [--alpha A] [--checkpoints 5,10,20,50,100] [--min-pair-history N]
[--draw-habit/--no-draw-habit] [--model-checkpoints 20,50,...|none] [--model-alpha A] [--min-model-votes N]
[--by-address/--no-by-address] [--drift [--drift-days 10] [--drift-alpha A]] [--seed S] [--dry-run]
[--duplicates/--no-duplicates] [--percentile P] [--min-count N] [--keep N]"""
from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arena.moderation import (
    AnomalyReport,
    DriftReport,
    DuplicateReport,
    anomaly_settings,
    duplicate_settings,
    models_check_drift,
    prompts_flag_duplicates,
    voters_flag_anomalous,
)
from config.errors import ApplicationError


def parse_checkpoints(text: str, *, option: str = "--checkpoints") -> tuple[int, ...]:
    """"5,10,20" -> (5, 10, 20); the core checks that they are positive and increasing."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise CommandError(f"{option}: expected comma-separated integers such as 5,10,20, got {text!r}") from None


class Command(BaseCommand):
    help = ("Flag voters whose votes disagree with everyone else's on the same model pairs (Fisher's combination "
            "test, Chatbot Arena §5.1), and the votes on over-asked typed prompts. Flags only; never deletes. "
            "Defaults come from the ARENA_ANOMALY_* and ARENA_DUPLICATE_PROMPT_* settings.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--alpha", type=float, default=None, help="false-flag probability per honest voter")
        parser.add_argument("--checkpoints", default=None, help="vote counts to test at, e.g. 5,10,20,50,100")
        parser.add_argument("--min-pair-history", type=int, default=None, dest="min_pair_history",
                            help="skip votes whose pair has fewer other votes than this")
        parser.add_argument("--draw-habit", action=argparse.BooleanOptionalAction, default=None, dest="draw_habit",
                            help="also score the voter's own tie rate (default: ARENA_ANOMALY_DRAW_HABIT)")
        parser.add_argument("--model-checkpoints", default=None, dest="model_checkpoints",
                            help="judged-vote counts for the per-model test, e.g. 20,50,100,200,500; 'none': off")
        parser.add_argument("--model-alpha", type=float, default=None, dest="model_alpha",
                            help="false-flag probability of the per-model test per honest identity")
        parser.add_argument("--min-model-votes", type=int, default=None, dest="min_model_votes",
                            help="fewest votes on a model for the per-model test to judge them")
        parser.add_argument("--by-address", action=argparse.BooleanOptionalAction, default=None, dest="by_address",
                            help="also test the voters sharing an address as one (default: ARENA_ANOMALY_BY_ADDRESS)")
        parser.add_argument("--drift", action="store_true",
                            help="also report contenders whose recent results drifted (for review; writes nothing)")
        parser.add_argument("--drift-days", type=int, default=10, dest="drift_days",
                            help="days of votes the drift check reads (default 10)")
        parser.add_argument("--drift-alpha", type=float, default=None, dest="drift_alpha",
                            help="drift check: chance per day of a finding when nothing changed (default 0.01)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the randomized p-values")
        parser.add_argument("--dry-run", action="store_true", dest="dry_run", help="report, write nothing")
        parser.add_argument("--duplicates", action=argparse.BooleanOptionalAction, default=True,
                            help="also flag votes on duplicate typed prompts (default: yes)")
        parser.add_argument("--percentile", type=float, default=None, help="duplicate prompts: count percentile")
        parser.add_argument("--min-count", type=int, default=None, dest="min_count",
                            help="duplicate prompts: fewest votes for a duplicate")
        parser.add_argument("--keep", type=int, default=None, help="duplicate prompts: votes kept rated per prompt")

    def handle(self, *args: Any, **options: Any) -> None:
        voter_args = anomaly_settings()
        if options["alpha"] is not None:
            voter_args["alpha"] = options["alpha"]
        if options["checkpoints"] is not None:
            voter_args["checkpoints"] = parse_checkpoints(options["checkpoints"])
        if options["min_pair_history"] is not None:
            voter_args["min_pair_history"] = options["min_pair_history"]
        if options["draw_habit"] is not None:
            voter_args["draw_habit"] = options["draw_habit"]
        if options["model_checkpoints"] is not None:
            text = options["model_checkpoints"]
            voter_args["model_checkpoints"] = (() if text.strip().lower() == "none"
                                               else parse_checkpoints(text, option="--model-checkpoints"))
            if voter_args["model_checkpoints"] == () and text.strip().lower() != "none":
                raise CommandError("--model-checkpoints: give at least one checkpoint, or 'none' to turn the test off")
        for name in ("model_alpha", "min_model_votes", "by_address"):
            if options[name] is not None:
                voter_args[name] = options[name]
        prompt_args = duplicate_settings()
        prompt_args.update({name: options[name] for name in ("percentile", "min_count", "keep")
                            if options[name] is not None})
        try:
            report = voters_flag_anomalous(**voter_args, dry_run=options["dry_run"], seed=options["seed"])
            self._print_voters(report)
            if options["duplicates"]:
                self._print_prompts(prompts_flag_duplicates(**prompt_args, dry_run=options["dry_run"]))
            if options["drift"]:
                drift_args: dict[str, Any] = {"days": options["drift_days"]}
                if options["drift_alpha"] is not None:
                    drift_args["alpha"] = options["drift_alpha"]
                self._print_drift(models_check_drift(**drift_args))
        except ApplicationError as exc:
            raise CommandError(f"{'--' + exc.field.replace('_', '-') + ': ' if exc.field else ''}{exc.message}") \
                from None

    def _print_voters(self, report: AnomalyReport) -> None:
        verb = "would flag" if report.dry_run else "flagged"
        per_model = (f"per-model test at {','.join(map(str, report.model_checkpoints))} alpha {report.model_alpha:g}"
                     if report.model_checkpoints else "no per-model test")
        self.stdout.write(
            f"anomalous voters (alpha {report.alpha:g}, checkpoints {','.join(map(str, report.checkpoints))}, "
            f"{per_model}, min pair history {report.min_pair_history}): {report.voters_tested} voters tested, "
            f"{report.voters_short_history} with too little pair history, {report.already_flagged} already flagged; "
            f"{report.addresses_tested} shared addresses tested, {report.addresses_flagged} failed; "
            f"{verb} {len(report.flagged)}"
        )
        for f in report.flagged:
            self.stdout.write(f"  {f.key} (voter {f.voter_id}, {f.n_pvalues} votes judged): {f.reason}")

    def _print_drift(self, report: DriftReport) -> None:
        self.stdout.write(
            f"model drift (last {report.days} days, windows {','.join(map(str, report.windows))} days, alpha "
            f"{report.alpha:g} per day; report only, nothing held): {report.votes_read} votes read, "
            f"{len(report.findings)} findings"
        )
        for f in report.findings:
            direction = "better" if f.z > 0 else "worse"
            self.stdout.write(f"  {f.name or f.contender_id}: {direction} than before on {f.first_day}..{f.last_day} "
                              f"(Z = {f.z:.1f}, p = {f.p:.1e}): review before trusting its rank change")

    def _print_prompts(self, report: DuplicateReport) -> None:
        verb = "would flag" if report.dry_run else "flagged"
        threshold = "-" if report.threshold is None else f"{report.threshold:.1f}"
        self.stdout.write(
            f"duplicate prompts (percentile {report.percentile:g} = {threshold} votes, min count {report.min_count}, "
            f"keep {report.keep}): {report.prompts_counted} typed prompts counted, "
            f"{len(report.duplicates)} duplicates; "
            f"{verb} {report.votes_flagged} votes"
        )
        for d in report.duplicates:
            self.stdout.write(f"  prompt {d.prompt_id}: {d.votes} votes, {d.newly_flagged} newly flagged")
