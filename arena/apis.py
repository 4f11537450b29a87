"""REST API v1 of the arena: parse, call a service or selector, serialize. No rules live here."""
from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import Forbidden, ValidationFailed
from config.schema import error_response

from .captcha import captcha_enforce
from .identity import voter_for_read, voter_from_request
from .models import MAX_K, MIN_K, Battle, Outcome
from .ratelimit import rate_limit_enforce
from .selectors import BattleAccess, battle_access, battle_access_written, battle_view, contender_list
from .services import SlotInput, battle_continue, battle_create, battle_open, battle_void_if_stalled, vote_record
from .verdicts import VoteChoice


class ContenderOutput(serializers.Serializer):
    name = serializers.CharField()
    organization = serializers.CharField()
    license = serializers.CharField()


class PromptOutput(serializers.Serializer):
    text = serializers.CharField()
    category = serializers.CharField()
    language = serializers.CharField()


class MessageOutput(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()


class AnonymousSlotOutput(serializers.Serializer):
    position = serializers.IntegerField()
    label = serializers.CharField()
    response = serializers.CharField(help_text="This turn's answer: while generating, the text released so far.")
    conversation = MessageOutput(many=True, help_text="The completed turns (user and assistant messages).")


class RevealedSlotOutput(AnonymousSlotOutput):
    contender = ContenderOutput()
    token_count = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)


class VoteOutput(serializers.Serializer):
    kind = serializers.CharField()
    outcome = serializers.CharField(allow_null=True)
    best = serializers.IntegerField(source="best_position", allow_null=True)
    ranking = serializers.JSONField(allow_null=True)
    aspects = serializers.JSONField()
    rationale = serializers.CharField()
    created = serializers.DateTimeField()


class AnonymousBattleOutput(serializers.Serializer):
    """Before the vote: nothing that identifies a contender (no names, ids, latencies or token counts)."""

    id = serializers.UUIDField()
    k = serializers.IntegerField()
    status = serializers.CharField(help_text="open, voted or void.")
    generation = serializers.CharField(help_text="running (answers still streaming), done or failed.")
    complete = serializers.BooleanField(help_text="Every answer of the current turn is complete.")
    turns = serializers.IntegerField()
    void_reason = serializers.CharField(help_text="Why the battle is void (empty otherwise).")
    created = serializers.DateTimeField()
    prompt = PromptOutput(allow_null=True)
    slots = AnonymousSlotOutput(many=True)


class RevealedBattleOutput(AnonymousBattleOutput):
    revealed_at = serializers.DateTimeField()
    slots = RevealedSlotOutput(many=True)
    vote = VoteOutput()


def battle_body(request: Request, battle_id: UUID, *, check_stalled: bool = True) -> dict[str, Any]:
    """The battle as this request's voter may see it: through the one gate, revealed only once voted.

    ``check_stalled=False`` where the request itself has just written the battle (opened, continued or voted
    it): it cannot have outlived its generation time-out, so the stalled check would be a wasted query.
    """
    voter = voter_for_read(request)
    if check_stalled:
        battle_void_if_stalled(battle_id=battle_id, voter=voter)
    return _serialized(battle_access(battle_id=battle_id, voter=voter))


def written_battle_body(request: Request, battle: Battle) -> dict[str, Any]:
    """The battle this request has just opened or voted, from the objects the write holds (no second read)."""
    return _serialized(battle_access_written(battle, voter=voter_for_read(request)))


def _serialized(access: BattleAccess) -> dict[str, Any]:
    view = battle_view(access)
    return (RevealedBattleOutput if view.reveal else AnonymousBattleOutput)(view).data


class ContenderListApi(APIView):
    @extend_schema_serializer(component_name="ContenderListItem")
    class OutputSerializer(ContenderOutput):
        family = serializers.CharField()
        active = serializers.BooleanField()

    @extend_schema(responses=OutputSerializer(many=True), operation_id="contenders_list")
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(contender_list(), many=True).data)


class BattleCreateApi(APIView):
    """Open a battle. Anyone: ``{prompt?, k}``, contenders chosen by matchmaking, answers generated live.
    Staff only: ``{prompt, slots: [{contender, response}, ...]}`` opens a battle with given responses (tools)."""

    @extend_schema_serializer(component_name="BattleCreateInput")
    class InputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="BattleSlotInput")
        class SlotInputSerializer(serializers.Serializer):
            contender = serializers.CharField(max_length=200)
            response = serializers.CharField(allow_blank=True, max_length=200_000)
            token_count = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, allow_null=True)
            latency_ms = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, allow_null=True)

        prompt = serializers.CharField(max_length=100_000, allow_blank=True, required=False, default="",
                                       help_text="Omit for a prompt sampled from the arena's pool.")
        k = serializers.IntegerField(min_value=MIN_K, max_value=MAX_K, required=False, default=2,
                                     help_text="How many anonymous answers (public battles).")
        category = serializers.CharField(max_length=64, allow_blank=True, required=False, default="")
        language = serializers.CharField(max_length=32, allow_blank=True, required=False, default="")
        captcha = serializers.CharField(max_length=4000, required=False, default="",
                                        help_text="CAPTCHA token, when the arena requires one.")
        slots = SlotInputSerializer(many=True, min_length=MIN_K, max_length=MAX_K, required=False,
                                    help_text="Staff only: the responses to show.")

    @extend_schema(request=InputSerializer, responses={201: AnonymousBattleOutput}, operation_id="battles_create")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "slots" in values:
            if not request.user.is_staff:
                raise Forbidden("only staff may open a battle with given responses", field="slots")
            battle = battle_create(
                voter=voter_from_request(request), slots=[SlotInput(**slot) for slot in values["slots"]],
                prompt_text=values["prompt"], category=values["category"], language=values["language"],
            )
        else:
            rate_limit_enforce(request, scope="battle")
            captcha_enforce(request, token=values["captcha"] or request.headers.get("X-Captcha-Token", ""))
            battle = battle_open(voter=voter_from_request(request), k=values["k"], prompt_text=values["prompt"],
                                 category=values["category"], language=values["language"])
        return Response(written_battle_body(request, battle), status=201)


class BattleDetailApi(APIView):
    @extend_schema(responses=PolymorphicProxySerializer(
                       component_name="Battle", serializers=[AnonymousBattleOutput, RevealedBattleOutput],
                       resource_type_field_name=None),
                   operation_id="battles_retrieve",
                   description="Anonymous (position, label, response only) until voted; revealed afterwards. "
                               "While `generation` is `running`, `response` holds the text released so far.")
    def get(self, request: Request, battle_id: UUID) -> Response:
        return Response(battle_body(request, battle_id))


class BattleTurnApi(APIView):
    """Continue the conversation before voting: every anonymous model answers the new message."""

    @extend_schema_serializer(component_name="TurnInput")
    class InputSerializer(serializers.Serializer):
        prompt = serializers.CharField(max_length=100_000)

    @extend_schema(request=InputSerializer, responses={202: AnonymousBattleOutput}, operation_id="battles_turn")
    def post(self, request: Request, battle_id: UUID) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rate_limit_enforce(request, scope="battle")
        battle_void_if_stalled(battle_id=battle_id, voter=voter_for_read(request))
        battle = battle_continue(battle_id=battle_id, voter=voter_for_read(request),
                                 prompt_text=data.validated_data["prompt"])
        return Response(battle_body(request, battle.id, check_stalled=False), status=202)


class BattleVoteApi(APIView):
    @extend_schema_serializer(component_name="VoteInput")
    class InputSerializer(serializers.Serializer):
        outcome = serializers.ChoiceField(choices=Outcome.choices, required=False, help_text="K = 2 only.")
        best = serializers.IntegerField(required=False, help_text="Position of the best response (K > 2).")
        ranking = serializers.ListField(
            child=serializers.ListField(child=serializers.IntegerField()), required=False,
            help_text="Groups of positions, best first; positions in one group tie (K > 2).",
        )
        aspects = serializers.DictField(required=False, help_text="Aspect -> verdict of the same shape as the vote.")
        rationale = serializers.CharField(max_length=2000, required=False, allow_blank=True)

    @extend_schema(
        request=InputSerializer,
        responses={201: RevealedBattleOutput, 200: RevealedBattleOutput,
                   409: error_response("Already voted differently, void, expired or still generating.")},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
                                     description="Retries with the same key get the stored vote back (200).")],
        operation_id="battles_vote",
    )
    def post(self, request: Request, battle_id: UUID) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key") or uuid.uuid4().hex
        if len(key) > 128:
            raise ValidationFailed("must be at most 128 characters", field="Idempotency-Key")
        if any(ord(c) < 32 or ord(c) == 127 for c in key):  # a NUL reached Postgres's text column: a 500
            raise ValidationFailed("must not contain control characters (NUL included)", field="Idempotency-Key")
        rate_limit_enforce(request, scope="vote")
        battle_void_if_stalled(battle_id=battle_id, voter=voter_for_read(request))
        vote, created = vote_record(
            battle_id=battle_id,
            voter=voter_for_read(request),  # only someone who was served a battle has one to vote on
            choice=VoteChoice.from_input(data.validated_data, allowed_aspects=settings.ARENA_VOTE_ASPECTS),
            idempotency_key=key,
        )
        if created:
            return Response(written_battle_body(request, vote.battle), status=201)
        return Response(battle_body(request, vote.battle_id, check_stalled=False), status=200)
