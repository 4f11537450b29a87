"""``manage.py load_contenders``, its service, the source-config checks behind it, and the admin form."""
from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from arena.admin import ContenderAdminForm
from arena.models import Contender
from arena.sources import SourceConfigError, validate_source_config

pytestmark = pytest.mark.django_db

EXAMPLE = Path(__file__).resolve().parents[2] / "arena" / "demo" / "contenders.example.toml"

THREE = """
[[contender]]
name = "local-llama"
organization = "Meta"
family = "llama"
license = "llama3.2"
source = "openai"
base_url = "http://127.0.0.1:11434/v1"
model = "llama3.2:3b"
timeout_s = 30
identity_words = ["Llama", "Meta AI"]

[[contender]]
name = "pooled"
source = "pool"
sampling_weight = 0.5

[[contender]]
name = "tuned"
source = "transformers"
path = "/srv/models/tuned"
adapter = "/srv/models/tuned-adapter"
active = false
"""


def load(tmp_path: Path, text: str) -> str:
    path = tmp_path / "contenders.toml"
    path.write_text(text)
    out = StringIO()
    call_command("load_contenders", str(path), stdout=out)
    return out.getvalue()


def test_contenders_are_created_with_their_sources(tmp_path):
    out = load(tmp_path, THREE)
    assert "3 created, 0 updated, 0 unchanged" in out
    llama = Contender.objects.get(name="local-llama")
    assert (llama.organization, llama.family, llama.license, llama.source_kind) == ("Meta", "llama", "llama3.2",
                                                                                    "openai")
    assert llama.source_config == {"base_url": "http://127.0.0.1:11434/v1", "model": "llama3.2:3b", "timeout_s": 30.0}
    assert llama.identity_words == ["Llama", "Meta AI"]
    assert Contender.objects.get(name="pooled").sampling_weight == 0.5
    tuned = Contender.objects.get(name="tuned")
    assert (tuned.active, tuned.source_config) == (False, {"path": "/srv/models/tuned",
                                                           "adapter": "/srv/models/tuned-adapter"})


def test_loading_again_updates_by_name_and_reports_the_rest_unchanged(tmp_path):
    load(tmp_path, THREE)
    Contender.objects.filter(name="pooled").update(active=False)   # set in the admin: the file does not say
    out = load(tmp_path, THREE.replace('timeout_s = 30', 'timeout_s = 45').replace('"Meta"', '"Meta AI"'))
    assert "updated: local-llama" in out and "unchanged: pooled" in out and "unchanged: tuned" in out
    assert "0 created, 1 updated, 2 unchanged" in out
    llama = Contender.objects.get(name="local-llama")
    assert (llama.organization, llama.source_config["timeout_s"]) == ("Meta AI", 45.0)
    assert Contender.objects.get(name="pooled").active is False
    assert Contender.objects.count() == 3


def test_the_source_is_replaced_not_merged(tmp_path):
    load(tmp_path, THREE)
    load(tmp_path, THREE.replace('timeout_s = 30\n', ''))
    assert "timeout_s" not in Contender.objects.get(name="local-llama").source_config


def test_an_error_in_the_third_table_writes_nothing_and_names_the_table(tmp_path):
    broken = THREE.replace('path = "/srv/models/tuned"\n', "")
    with pytest.raises(CommandError) as failure:
        load(tmp_path, broken)
    assert "contender #3 (name 'tuned'): source_config.path: required" in str(failure.value)
    assert "nothing was loaded" in str(failure.value)
    assert not Contender.objects.exists()


def test_every_bad_table_is_reported(tmp_path):
    broken = (THREE.replace('base_url = "http://127.0.0.1:11434/v1"\n', "")
              .replace("sampling_weight = 0.5", "sampling_weight = -1"))
    with pytest.raises(CommandError) as failure:
        load(tmp_path, broken)
    message = str(failure.value)
    assert "contender #1 (name 'local-llama'): source_config.base_url: required" in message
    assert "contender #2 (name 'pooled'): sampling_weight: must be a number of at least 0" in message


def test_an_existing_contender_is_not_changed_when_a_later_table_fails(tmp_path):
    load(tmp_path, THREE)
    broken = THREE.replace('"Meta"', '"Changed"').replace('source = "transformers"', 'source = "magic"')
    with pytest.raises(CommandError, match=r"contender #3 \(name 'tuned'\): source: required: one of"):
        load(tmp_path, broken)
    assert Contender.objects.get(name="local-llama").organization == "Meta"


def test_a_literal_api_key_is_refused(tmp_path):
    with_secret = THREE.replace('model = "llama3.2:3b"', 'model = "llama3.2:3b"\napi_key = "sk-live-123"')
    with pytest.raises(CommandError) as failure:
        load(tmp_path, with_secret)
    message = str(failure.value)
    assert "contender #1 (name 'local-llama'): source_config.api_key:" in message and "api_key_env" in message
    assert "sk-live-123" not in message
    assert not Contender.objects.exists()


def test_duplicate_names_and_unknown_keys_are_refused(tmp_path):
    text = THREE + '\n[[contender]]\nname = "pooled"\nsource = "pool"\n[[contender]]\nname = "x"\nsource = "pool"\n' \
                   'base_url = "http://h/v1"\n'
    with pytest.raises(CommandError) as failure:
        load(tmp_path, text)
    assert "contender #4 (name 'pooled'): name: already used by contender #2" in str(failure.value)
    assert "contender #5 (name 'x'): source_config.base_url: unknown key for source kind 'pool'" in str(failure.value)


@pytest.mark.parametrize("text, expected", [
    ("[[contender]]\nname = ", "cannot read"),
    ("title = 'x'\n", "unknown top-level key(s) title"),
    ("", "no [[contender]] tables"),
])
def test_unreadable_files_are_refused(tmp_path, text, expected):
    with pytest.raises(CommandError, match=expected.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load(tmp_path, text)


def test_the_shipped_example_loads(tmp_path):
    call_command("load_contenders", str(EXAMPLE), stdout=StringIO())
    assert set(Contender.objects.values_list("source_kind", flat=True)) == {"openai", "transformers"}
    vllm = Contender.objects.get(source_config__base_url="http://127.0.0.1:8001/v1")
    assert vllm.source_config["api_key_env"] == "VLLM_API_KEY"


@pytest.mark.parametrize("kind, config, field", [
    ("openai", {"base_url": "ftp://x", "model": "m"}, "source_config.base_url"),
    ("openai", {"base_url": "http://user:pw@h/v1", "model": "m"}, "source_config.base_url"),
    ("openai", {"base_url": "http://h/v1", "model": "m", "timeout_s": 0}, "source_config.timeout_s"),
    ("openai", {"base_url": "http://h/v1", "model": "m", "max_tokens": 1.5}, "source_config.max_tokens"),
    ("openai", {"base_url": "http://h/v1", "model": "m", "temperature": 2.5}, "source_config.temperature"),
    ("openai", {"base_url": "http://h/v1", "model": "m", "stream": "yes"}, "source_config.stream"),
    ("openai", {"base_url": "http://h/v1", "model": "m", "api_key_env": "not a name"}, "source_config.api_key_env"),
    ("openai", {"base_url": "http://h/v1", "model": ""}, "source_config.model"),
    ("transformers", {"path": "/m", "device": "gpu"}, "source_config.device"),
    ("transformers", {"path": "/m", "seed": -1}, "source_config.seed"),
    ("pool", {"model": "m"}, "source_config.model"),
    ("pool", [], "source_config"),
    ("magic", {}, "source_kind"),
])
def test_source_configs_are_checked_per_kind(kind, config, field):
    with pytest.raises(SourceConfigError) as failure:
        validate_source_config(kind, config)
    assert failure.value.field == field


def test_a_valid_config_comes_back_normalised():
    assert validate_source_config("openai", {"base_url": " http://h:8001/v1/ ", "model": "m", "timeout_s": 5,
                                             "stream": False, "max_retries": 0}) == \
        {"base_url": "http://h:8001/v1", "model": "m", "timeout_s": 5.0, "stream": False, "max_retries": 0}
    assert validate_source_config("none", None) == {}


def _admin_form(kind: str, config: str) -> ContenderAdminForm:
    return ContenderAdminForm(data={"name": "x", "source_kind": kind, "source_config": config, "active": "on",
                                    "sampling_weight": "1", "created": "2025-01-01 00:00:00",
                                    "identity_words": "[]"})


def test_the_admin_refuses_a_bad_source_config_on_the_field():
    form = _admin_form("openai", '{"model": "m"}')
    assert not form.is_valid()
    assert form.errors["source_config"] == ["base_url: required"]
    form = _admin_form("openai", '{"base_url": "http://h/v1", "model": "m", "api_key": "sk-1"}')
    assert not form.is_valid() and "api_key_env" in form.errors["source_config"][0]


def test_the_admin_accepts_and_normalises_a_good_source_config():
    form = _admin_form("openai", '{"base_url": "http://h/v1/", "model": "m"}')
    assert form.is_valid(), form.errors
    assert form.save().source_config == {"base_url": "http://h/v1", "model": "m"}
