"""The arena's data: who competes, what was asked, what was shown to whom, and how they voted.

Invariants live in the database wherever SQL can state them (CheckConstraint, UniqueConstraint, and on
Postgres the triggers of migration 0002 for rules that span two tables); services check the rest first
so that a client gets a message naming the field rather than an IntegrityError.
Votes are append-only: ratings are computed from them, never stored as counters.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .ids import uuid7

MIN_K = 2
MAX_K = 6


class SourceKind(models.TextChoices):
    POOL = "pool", "Pre-generated response pool"
    OPENAI = "openai", "OpenAI-compatible HTTP endpoint"
    TRANSFORMERS = "transformers", "Local transformers model"
    NONE = "none", "No source (imported votes only)"


class Contender(models.Model):
    name = models.CharField(max_length=200, unique=True)
    organization = models.CharField(max_length=200, blank=True)
    license = models.CharField(max_length=100, blank=True)
    family = models.CharField(max_length=100, blank=True, help_text="Model family, for self-preference audits.")
    source_kind = models.CharField(max_length=20, choices=SourceKind.choices, default=SourceKind.NONE)
    source_config = models.JSONField(default=dict, blank=True)
    active = models.BooleanField(default=True, help_text="Inactive contenders keep their votes but get no new battles.")
    sampling_weight = models.FloatField(default=1.0)
    identity_words = models.JSONField(
        default=list, db_default=[], blank=True,
        help_text="Extra words that reveal this model if an answer says them (its name, organization and family "
                  "always count).",
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(sampling_weight__gte=0), name="contender_weight_nonnegative"),
            models.CheckConstraint(condition=~Q(name=""), name="contender_name_nonempty"),
        ]

    def __str__(self) -> str:
        return self.name


class Prompt(models.Model):
    text = models.TextField()
    sha256 = models.CharField(max_length=64, unique=True, help_text="Hash of the normalised text, for dedup.")
    category = models.CharField(max_length=64, blank=True, db_index=True)
    language = models.CharField(max_length=32, blank=True, db_index=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="prompt_sha256_hex")]

    def __str__(self) -> str:
        return self.text[:60]


class Voter(models.Model):
    """Someone who votes: an anonymous browser (signed cookie), a user, or a judge named in an import."""

    key = models.CharField(
        max_length=200, unique=True, help_text="'anon:<id>' for cookies, 'user:<pk>' for users, the judge for imports."
    )
    user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    ip_hash = models.CharField(max_length=64, blank=True, help_text="Salted hash; the address itself is never kept.")
    created = models.DateTimeField(default=timezone.now)
    flagged = models.BooleanField(default=False)
    flag_reason = models.TextField(blank=True)
    anomaly_decided_through = models.PositiveIntegerField(
        default=0, db_default=0,
        help_text="The anomalous-voter test's checkpoints up to this vote count are decided: never re-tested.",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(key=""), name="voter_key_nonempty"),
            models.CheckConstraint(condition=Q(flagged=False) | ~Q(flag_reason=""), name="voter_flag_has_reason"),
        ]

    def __str__(self) -> str:
        return self.key


class AnomalyAddress(models.Model):
    """An address (``Voter.ip_hash``) that the anomalous-voter test judges as one identity: what it has decided.

    Its voters' votes are tested together (``arena.moderation``); each checkpoint is decided once, as a voter's
    are (``Voter.anomaly_decided_through``), so that repeated runs keep an honest address's flag chance at the
    test's level.
    """

    ip_hash = models.CharField(max_length=64, unique=True, help_text="Voter.ip_hash of the voters tested together.")
    anomaly_decided_through = models.PositiveIntegerField(
        default=0, help_text="The test's checkpoints up to this vote count are decided: never re-tested.",
    )

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(ip_hash=""), name="anomaly_address_nonempty")]

    def __str__(self) -> str:
        return f"address {self.ip_hash[:12]}"


class BattleStatus(models.TextChoices):
    OPEN = "open", "Waiting for a vote"
    VOTED = "voted", "Voted and revealed"
    VOID = "void", "Void (a response failed or the battle expired)"


class PromptSource(models.TextChoices):
    TYPED = "typed", "Typed by the visitor"
    SAMPLED = "sampled", "Sampled by the arena from its prompt pool"
    GIVEN = "given", "Given with the responses (staff API, imports)"


class Generation(models.TextChoices):
    RUNNING = "running", "Responses are being generated"
    DONE = "done", "Every response is complete"
    FAILED = "failed", "A response source failed (the battle is void)"


class Battle(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    prompt = models.ForeignKey(Prompt, null=True, blank=True, on_delete=models.PROTECT, related_name="battles")
    k = models.PositiveSmallIntegerField(help_text="Number of anonymous responses shown (2..6).")
    voter = models.ForeignKey(Voter, on_delete=models.PROTECT, related_name="battles",
                              help_text="Who it was served to.")
    anonymous = models.BooleanField(default=True,
                                    help_text="False when the voter saw the names (not rated by default).")
    created = models.DateTimeField(default=timezone.now, db_index=True)
    revealed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=BattleStatus.choices, default=BattleStatus.OPEN)
    # db_default as well as default: the bulk importer COPYs battles without naming these columns.
    prompt_source = models.CharField(max_length=10, choices=PromptSource.choices, default=PromptSource.GIVEN,
                                     db_default=PromptSource.GIVEN)
    generation = models.CharField(max_length=10, choices=Generation.choices, default=Generation.DONE,
                                  db_default=Generation.DONE)
    generation_started = models.DateTimeField(null=True, blank=True,
                                              help_text="When the current turn's generation began.")
    turns = models.PositiveSmallIntegerField(default=1, db_default=1,
                                             help_text="User turns so far (multi-turn battles).")
    void_reason = models.TextField(blank=True, default="", db_default="")
    identity_leak = models.TextField(
        blank=True, default="", db_default="",
        help_text="Why an answer reveals its model (empty: none found); the vote is stored but not rated.",
    )
    # What describes the battle even without prompt text (imports often carry none). Tags live in BattleTag.
    language = models.CharField(max_length=32, blank=True, default="", db_default="", db_index=True,
                                help_text="Language of the conversation as the source gave it (en, English, ...).")
    category = models.CharField(max_length=64, blank=True, default="", db_default="",
                                help_text="A free-form category given by the source (also one of the tags).")
    external_id = models.CharField(max_length=100, blank=True, default="", db_default="",
                                   help_text="The battle's id in an imported release (LMArena's id): its identity.")
    source_metadata = models.JSONField(null=True, blank=True,
                                       help_text="Release fields kept as they were (category_tag, conv_metadata, ...).")
    # Not a column: every slot of the battle, in position order, as the write that holds this object has just made
    # or read them (opening or voting it), so that the answer to that request need not read them again
    # (``arena.selectors.battle_view``). None on a battle read from the database.
    written_slots: list[BattleSlot] | None = None

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["external_id"], condition=~Q(external_id=""),
                                    name="battle_unique_external_id"),
            models.CheckConstraint(condition=Q(k__gte=MIN_K, k__lte=MAX_K), name="battle_k_in_range"),
            models.CheckConstraint(condition=Q(turns__gte=1), name="battle_turns_positive"),
            models.CheckConstraint(condition=Q(prompt_source__in=PromptSource.values),
                                   name="battle_prompt_source_valid"),
            models.CheckConstraint(condition=Q(generation__in=Generation.values), name="battle_generation_valid"),
            # Only a battle whose every answer is complete can be voted; a failed source voids the battle.
            models.CheckConstraint(condition=~Q(status=BattleStatus.VOTED) | Q(generation=Generation.DONE),
                                   name="battle_voted_only_when_generated"),
            models.CheckConstraint(condition=~Q(generation=Generation.FAILED) | Q(status=BattleStatus.VOID),
                                   name="battle_failed_generation_is_void"),
            models.CheckConstraint(condition=~Q(status=BattleStatus.VOID) | ~Q(void_reason=""),
                                   name="battle_void_has_reason"),
            models.CheckConstraint(condition=Q(status=BattleStatus.VOID) | Q(void_reason=""),
                                   name="battle_reason_only_when_void"),
            models.CheckConstraint(condition=~Q(status=BattleStatus.VOID) | ~Q(generation=Generation.RUNNING),
                                   name="battle_void_not_generating"),
            models.CheckConstraint(condition=~Q(generation=Generation.RUNNING) | Q(generation_started__isnull=False),
                                   name="battle_running_has_start"),
            models.CheckConstraint(
                condition=(Q(status=BattleStatus.VOTED) & Q(revealed_at__isnull=False))
                | (~Q(status=BattleStatus.VOTED) & Q(revealed_at__isnull=True)),
                name="battle_revealed_iff_voted",
            ),
            models.CheckConstraint(condition=Q(status__in=BattleStatus.values), name="battle_status_valid"),
        ]

    def __str__(self) -> str:
        return f"battle {self.id} (k={self.k}, {self.status})"


class BattleSlot(models.Model):
    # No index of its own: the unique (battle, position) index serves lookups by battle.
    battle = models.ForeignKey(Battle, on_delete=models.CASCADE, related_name="slots", db_index=False)
    position = models.PositiveSmallIntegerField(help_text="0-based place on the page (A = 0).")
    contender = models.ForeignKey(Contender, on_delete=models.PROTECT, related_name="slots")
    sample = models.PositiveSmallIntegerField(
        default=0, help_text="Which response of this contender: >0 only in named battles that show a model twice."
    )
    response = models.TextField(blank=True)
    conversation = models.JSONField(null=True, blank=True, help_text="Full multi-turn conversation, when known.")
    token_count = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="", db_default="",
                             help_text="Why this slot's source failed (staff only; the voter sees a generic note).")
    # Style counts of the answers (battlefiles.style), written with the vote or the import: style control
    # aggregates them in SQL instead of reading every response. Null: unknown (an import without text).
    style_tokens = models.PositiveIntegerField(null=True, blank=True)
    style_headers = models.PositiveIntegerField(null=True, blank=True)
    style_lists = models.PositiveIntegerField(null=True, blank=True)
    style_bold = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["battle", "position"]
        constraints = [
            models.UniqueConstraint(fields=["battle", "position"], name="slot_unique_position"),
            # A contender appears once per battle; FastChat's named mode (the voter picked the models) may
            # show one model twice, as distinct samples. Both rules below are also checked against the
            # battle by a Postgres trigger (migration 0002): position < k, and sample > 0 only if named.
            models.UniqueConstraint(fields=["battle", "contender", "sample"], name="slot_unique_contender_sample"),
            models.CheckConstraint(condition=Q(position__lt=MAX_K), name="slot_position_in_range"),
            models.CheckConstraint(condition=Q(sample__lt=MAX_K), name="slot_sample_in_range"),
            models.CheckConstraint(
                condition=Q(style_tokens__isnull=True, style_headers__isnull=True, style_lists__isnull=True,
                            style_bold__isnull=True)
                | Q(style_tokens__isnull=False, style_headers__isnull=False, style_lists__isnull=False,
                    style_bold__isnull=False),
                name="slot_style_all_or_none"),
        ]

    def __str__(self) -> str:
        return f"{self.battle_id}#{self.position}"


class BattleTag(models.Model):
    """A category a battle belongs to (LMArena's hard_6, math, english, ..., or a source's own category)."""

    battle = models.ForeignKey(Battle, on_delete=models.CASCADE, related_name="tags", db_index=False)
    tag = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["battle", "tag"], name="battletag_unique"),
            models.CheckConstraint(condition=~Q(tag=""), name="battletag_nonempty"),
        ]
        # A category leaderboard looks battles up by tag.
        indexes = [models.Index(fields=["tag", "battle"], name="battletag_tag_battle")]

    def __str__(self) -> str:
        return f"{self.battle_id}:{self.tag}"


class VoteKind(models.TextChoices):
    PAIRWISE = "pairwise", "Pairwise (K = 2)"
    BEST_OF_K = "best_of_k", "Best of K"
    RANKING = "ranking", "Ranking (ties allowed)"


class Outcome(models.TextChoices):
    A = "a", "A is better"
    B = "b", "B is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both are bad"


class Vote(models.Model):
    battle = models.OneToOneField(Battle, on_delete=models.PROTECT, related_name="vote")
    # No index of its own: the (voter, created) index below serves lookups by voter.
    voter = models.ForeignKey(Voter, on_delete=models.PROTECT, related_name="votes", db_index=False)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=12, choices=VoteKind.choices)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, null=True, blank=True)
    best_position = models.PositiveSmallIntegerField(null=True, blank=True)
    ranking = models.JSONField(
        null=True, blank=True, help_text="Ordered groups of positions, best first; positions in one group tie."
    )
    aspects = models.JSONField(default=dict, blank=True, help_text="Per-aspect verdicts, same shape as the vote.")
    rationale = models.TextField(blank=True)
    # Copies of the battle's facts that every leaderboard refit groups by: with them a refit over
    # millions of votes is one scan of this table instead of a join with battles and two slots. They can
    # never disagree with the battle: on Postgres a trigger (migration 0002) checks each against it.
    contender_a = models.ForeignKey(Contender, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                    db_index=False, help_text="Pairwise votes: the contender in position A.")
    contender_b = models.ForeignKey(Contender, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                    db_index=False, help_text="Pairwise votes: the contender in position B.")
    anonymous = models.BooleanField(default=True, help_text="The battle's anonymous flag.")
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)
    fingerprint = models.CharField(
        max_length=48, help_text="Hash of the vote's content: re-importing an export adds nothing."
    )

    class Meta:
        constraints = [
            # UniqueConstraint rather than unique=True: on Postgres the latter adds a second (LIKE) index
            # per column, which no query uses and every bulk import pays for.
            # Keys are the client's: unique per voter, so one voter's key can never collide with another's.
            models.UniqueConstraint(fields=["voter", "idempotency_key"], name="vote_unique_voter_idempotency_key"),
            models.UniqueConstraint(fields=["fingerprint"], name="vote_unique_fingerprint"),
            models.CheckConstraint(condition=Q(kind__in=VoteKind.values), name="vote_kind_valid"),
            models.CheckConstraint(
                condition=Q(outcome__isnull=True) | Q(outcome__in=Outcome.values), name="vote_outcome_valid"
            ),
            # Exactly the field that belongs to the kind is set.
            models.CheckConstraint(
                condition=(
                    Q(kind=VoteKind.PAIRWISE, outcome__isnull=False, best_position__isnull=True,
                      ranking__isnull=True)
                    | Q(kind=VoteKind.BEST_OF_K, outcome__isnull=True, best_position__isnull=False,
                        ranking__isnull=True)
                    | Q(kind=VoteKind.RANKING, outcome__isnull=True, best_position__isnull=True,
                        ranking__isnull=False)
                ),
                name="vote_fields_match_kind",
            ),
            models.CheckConstraint(
                condition=Q(best_position__isnull=True) | Q(best_position__lt=MAX_K), name="vote_best_in_range"
            ),
            models.CheckConstraint(
                condition=Q(kind=VoteKind.PAIRWISE, contender_a__isnull=False, contender_b__isnull=False)
                | (~Q(kind=VoteKind.PAIRWISE) & Q(contender_a__isnull=True, contender_b__isnull=True)),
                name="vote_pair_iff_pairwise",
            ),
            models.CheckConstraint(condition=~Q(idempotency_key=""), name="vote_idempotency_key_nonempty"),
            models.CheckConstraint(condition=~Q(fingerprint=""), name="vote_fingerprint_nonempty"),
        ]
        indexes = [models.Index(fields=["voter", "created"], name="vote_voter_created")]

    def __str__(self) -> str:
        return f"vote on {self.battle_id}"


class VoteFlagCode(models.TextChoices):
    IDENTITY_LEAK = "identity_leak", "A response revealed the model's identity"
    ANOMALOUS_VOTER = "anomalous_voter", "The voter's pattern looks automated or adversarial"
    DUPLICATE_PROMPT = "duplicate_prompt", "The prompt was asked many times"


class VoteFlag(models.Model):
    """A reason to distrust a vote; kept beside the vote so that the vote itself stays append-only."""

    vote = models.ForeignKey(Vote, on_delete=models.CASCADE, related_name="flags")
    code = models.CharField(max_length=32, choices=VoteFlagCode.choices)
    reason = models.TextField()
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["vote", "code"], name="voteflag_unique_code"),
            models.CheckConstraint(condition=Q(code__in=VoteFlagCode.values), name="voteflag_code_valid"),
            models.CheckConstraint(condition=~Q(reason=""), name="voteflag_reason_nonempty"),
        ]


class PoolResponse(models.Model):
    """A pre-generated answer of a contender to a prompt: the 'pool' response source."""

    contender = models.ForeignKey(Contender, on_delete=models.CASCADE, related_name="pool_responses")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="pool_responses")
    text = models.TextField()
    token_count = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["prompt", "contender"], name="pool_unique_prompt_contender")]


# --- Vote tallies: what a leaderboard refit reads instead of the votes -----------------------------------
#
# Every vote adds 1 to one row per table kind for its battle's facts (day, category tag, language, anonymous,
# flagged) and its verdict, once with tag "" (every battle) and once per tag of its battle. A refit then sums
# a few thousand rows whatever the number of votes. Upkeep (``arena.tallies``) is by an append-only change
# table: a vote only INSERTs (+1) rows, flagging a voter or a vote INSERTs (-1, +1) moves, and a fold moves the
# changes into the day and all-time tables in one statement. Inserts never wait for each other, where
# incrementing shared counters in each vote's transaction would make every concurrent vote on a popular pair
# wait for the previous one to commit. Readers sum the tables plus the unfolded changes, so a refit is exact
# whether or not a fold has run. ``manage.py rebuild_tallies`` recomputes everything from the votes.


class TallyFacts(models.Model):
    """The facts leaderboards filter votes by (``category``, ``language``, ``include_named``, ``exclude_flagged``)."""

    tag = models.CharField(max_length=64, blank=True, help_text="A BattleTag of the votes' battles; '' = every battle.")
    language = models.CharField(max_length=32, blank=True)
    anonymous = models.BooleanField()
    flagged = models.BooleanField(help_text="The vote has a VoteFlag or its voter is flagged.")

    class Meta:
        abstract = True


class PairVerdict(models.Model):
    """A pairwise vote's verdict as the tallies count it: the lower contender id as ``contender_a``, the other as
    ``contender_b`` and the outcome seen from them (``arena.tallies.pair_in_order``; positions are not kept)."""

    # No foreign-key constraint in the database: every id here is copied from a vote whose own constraint was
    # checked, and Django checks foreign keys at commit, one row at a time -- minutes for the millions of tally
    # rows an import writes. `rebuild_tallies --check` compares the tallies with the votes.
    contender_a = models.ForeignKey(Contender, on_delete=models.PROTECT, related_name="+", db_index=False,
                                    db_constraint=False)
    contender_b = models.ForeignKey(Contender, on_delete=models.PROTECT, related_name="+", db_index=False,
                                    db_constraint=False)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)

    class Meta:
        abstract = True


class RankingVerdict(models.Model):
    """A K-wise vote as the tallies count it: ordered groups of contender ids, best first (``arena.tallies``)."""

    ranking = models.CharField(max_length=200, help_text='Canonical JSON of contender ids, e.g. "[[12],[3,7]]".')

    class Meta:
        abstract = True


PAIR_KEY = ("tag", "language", "anonymous", "flagged", "contender_a", "contender_b", "outcome")
RANKING_KEY = ("tag", "language", "anonymous", "flagged", "ranking")


def _tally_constraints(prefix: str, key: tuple[str, ...]) -> list[models.BaseConstraint]:
    """One row per key. No CHECK (n >= 0): Postgres checks the row an upsert proposes before it finds the row
    the upsert adds to, so a fold of a -1 would fail; the fold refuses to leave a negative count instead."""
    return [models.UniqueConstraint(fields=list(key), name=f"{prefix}_unique_key")]


def _outcome_valid(prefix: str) -> models.CheckConstraint:
    return models.CheckConstraint(condition=Q(outcome__in=Outcome.values), name=f"{prefix}_outcome_valid")


class PairTallyDay(TallyFacts, PairVerdict):
    day = models.DateField(help_text="The vote's day in the site's time zone.")
    n = models.BigIntegerField()

    class Meta:
        # Leading (tag, day): a refit reads one tag, often a range of days.
        constraints = [*_tally_constraints("pairtallyday", ("tag", "day", *PAIR_KEY[1:])),
                       _outcome_valid("pairtallyday")]


class PairTallyAll(TallyFacts, PairVerdict):
    """All-time sums of PairTallyDay: the refit without a date filter reads these."""

    n = models.BigIntegerField()

    class Meta:
        constraints = [*_tally_constraints("pairtallyall", PAIR_KEY), _outcome_valid("pairtallyall")]


class PairTallyChange(TallyFacts, PairVerdict):
    """Not yet folded: +1 per new vote, -1/+1 per vote moved between flagged and not (append-only)."""

    day = models.DateField()
    n = models.BigIntegerField()

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(n=0), name="pairtallychange_count_nonzero"),
                       _outcome_valid("pairtallychange")]


class RankingTallyDay(TallyFacts, RankingVerdict):
    day = models.DateField()
    n = models.BigIntegerField()

    class Meta:
        constraints = _tally_constraints("rankingtallyday", ("tag", "day", *RANKING_KEY[1:]))


class RankingTallyAll(TallyFacts, RankingVerdict):
    n = models.BigIntegerField()

    class Meta:
        constraints = _tally_constraints("rankingtallyall", RANKING_KEY)


class RankingTallyChange(TallyFacts, RankingVerdict):
    day = models.DateField()
    n = models.BigIntegerField()

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(n=0), name="rankingtallychange_count_nonzero")]
