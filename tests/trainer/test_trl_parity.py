"""Parity with TRL's ``DPOTrainer`` (a test-only dependency): same tiny model, same records, same numbers.

Our path: ``trainer.data`` (read, tokenise with ``trainer.chat``, collate) and ``trainer.losses`` (``sequence_logps``,
``rewards``, ``dpo_loss``), plus the trainer's own forward ``trainer.train.response_logps`` (the LM head on the
response positions only). TRL's path: ``DPOTrainer``'s dataset preparation and ``DataCollatorForPreference``, its
per-sequence log-probs (``compute_ref_log_probs``, the same fused-LM-head forward and sum as its training loss) and
its loss (``compute_loss``, ``loss_type="sigmoid"``).

TRL gets each prompt already rendered by ``trainer.chat.plain_prompt`` (the tiny tokenizer has no chat template), as
a plain string, so both sides must see the same token ids; that is asserted first. The policy is the tiny model with
its weights perturbed, the reference the tiny model itself, so the log-ratios and the loss are far from trivial.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("trl", reason="trl is not installed (a test-only dependency, pinned in requirements.txt)")
pytest.importorskip("datasets", reason="TRL's datasets dependency is missing")

from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from tests.trainer.conftest import _rng_kept, planted_records, write_jsonl
from trainer import losses
from trainer.chat import plain_prompt
from trainer.data import collate, read_records, tokenize
from trainer.train import by_slot, load_causal_lm, response_logps

BETA = 0.1
MAX_LENGTH = 256


def _records() -> list[dict]:
    """Six planted pairs (varied lengths) and one multi-turn conversation with a system message."""
    records = planted_records(6, seed=11)
    records.append({"prompt": [{"role": "system", "content": "Answer briefly."},
                               {"role": "user", "content": "The cat likes what?"},
                               {"role": "assistant", "content": "The river!"},
                               {"role": "user", "content": "Every voter reads what?"}],
                    "chosen": "Every voter reads a short poem today.", "rejected": "The weather."})
    return records


@pytest.fixture(scope="module")
def setup(tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("trl-parity")
    policy_dir = root / "policy"
    model = load_causal_lm(tiny_lm)
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(1)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(policy_dir)
    path = write_jsonl(root / "pairs.jsonl", _records())
    return {"tokenizer": AutoTokenizer.from_pretrained(tiny_lm), "policy": policy_dir, "reference": tiny_lm,
            "path": path, "root": root}


def _ours(setup: dict) -> dict:
    tokenizer = setup["tokenizer"]
    records = read_records(setup["path"])
    examples, stats = tokenize(records, tokenizer, max_length=MAX_LENGTH)
    assert stats.truncated == 0
    batch = collate(examples, pad_id=tokenizer.pad_token_id)
    policy, reference = load_causal_lm(setup["policy"]), load_causal_lm(setup["reference"])
    reference.eval()
    labels, mask = batch.input_ids[:, 1:], batch.loss_mask[:, 1:]
    with torch.no_grad():
        ref_rows = losses.sequence_logps(reference(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                                   use_cache=False).logits[:, :-1], labels, mask)
        flat_rows = response_logps(policy, batch, flat=True)                    # the trainer's forward
    rows = losses.sequence_logps(policy(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                        use_cache=False).logits[:, :-1], labels, mask)   # (2B,), with autograd
    logp, ref = by_slot(rows, batch), by_slot(ref_rows, batch)                  # (B, 2): chosen, rejected
    loss = losses.dpo_loss(losses.rewards(logp[:, 0], ref[:, 0], BETA), losses.rewards(logp[:, 1], ref[:, 1], BETA))
    loss.backward()
    return {"records": records, "examples": examples, "batch": batch, "logp": logp.detach(), "ref": ref,
            "flat": by_slot(flat_rows, batch), "loss": loss.detach(),
            "grads": {n: p.grad.clone() for n, p in policy.named_parameters()}}


def _trl(setup: dict, records: list) -> dict:
    tokenizer = setup["tokenizer"]
    rows = [{"prompt": plain_prompt(r.messages), "chosen": r.responses[0], "rejected": r.responses[1]}
            for r in records]
    args = DPOConfig(output_dir=str(setup["root"] / "trl-out"), beta=BETA, loss_type=["sigmoid"],
                     max_length=MAX_LENGTH, per_device_train_batch_size=len(rows), precompute_ref_log_probs=False,
                     bf16=False, use_cpu=True, activation_checkpointing=False, report_to="none",
                     dataloader_num_workers=0, disable_dropout=True)
    trainer = DPOTrainer(model=load_causal_lm(setup["policy"]), ref_model=load_causal_lm(setup["reference"]),
                         args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    prepared = trainer.train_dataset
    inputs = trainer.data_collator([prepared[i] for i in range(len(prepared))])
    inputs = {k: v.to(trainer.accelerator.device) for k, v in inputs.items()}
    policy = trainer.model
    policy.train()
    with torch.no_grad():
        chosen, rejected = trainer.compute_ref_log_probs(policy, inputs)
        ref_chosen, ref_rejected = trainer.compute_ref_log_probs(trainer.ref_model, inputs)
    policy.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(policy, inputs)
    loss.backward()
    return {"prepared": prepared, "inputs": inputs, "logp": torch.stack([chosen, rejected], 1),
            "ref": torch.stack([ref_chosen, ref_rejected], 1), "loss": loss.detach(),
            "grads": {n: p.grad.clone() for n, p in policy.named_parameters()},
            "metrics": {k: v[-1] for k, v in trainer._metrics["train"].items()}}


# TRL 1.16 itself asks transformers 5.23 for the deprecated ``is_gradient_checkpointing``.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_dpo_matches_trl(setup: dict) -> None:
    ours = _ours(setup)
    with _rng_kept():                                      # DPOTrainer seeds the process-wide RNGs (set_seed)
        theirs = _trl(setup, ours["records"])
    n = len(ours["examples"])

    # 1. The same tokens: per record (prompt, chosen + EOS, rejected + EOS), then the padded batch and masks.
    prepared = theirs["prepared"]
    assert len(prepared) == n
    for i, example in enumerate(ours["examples"]):
        assert prepared[i]["prompt_ids"] == example.prompt, i
        assert prepared[i]["chosen_ids"] == example.responses[0], i
        assert prepared[i]["rejected_ids"] == example.responses[1], i
        assert example.responses[0][-1] == setup["tokenizer"].eos_token_id
    batch, inputs = ours["batch"], theirs["inputs"]

    def trl_order(x: torch.Tensor) -> torch.Tensor:       # ours: c0 r0 c1 r1 ...; TRL: c0 c1 ... r0 r1 ...
        return x.view(n, 2, -1).transpose(0, 1).reshape(2 * n, -1)

    assert torch.equal(trl_order(batch.input_ids), inputs["input_ids"])
    assert torch.equal(trl_order(batch.attention_mask), inputs["attention_mask"])
    assert torch.equal(trl_order(batch.loss_mask.long()), inputs["completion_mask"])

    # 2. Sequence log-probs of policy and reference, (B, 2) = (chosen, rejected).
    torch.testing.assert_close(ours["logp"], theirs["logp"], rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(ours["flat"], theirs["logp"], rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(ours["ref"], theirs["ref"], rtol=1e-6, atol=1e-5)
    assert (ours["logp"] - ours["ref"]).abs().mean() > 0.3         # the policy really differs from the reference

    # 3. The DPO loss (and TRL's logged reward metrics), then its gradient on every parameter.
    torch.testing.assert_close(ours["loss"], theirs["loss"], rtol=1e-6, atol=1e-6)
    assert abs(ours["loss"].item() - 0.6931) > 1e-3                # not the trivial log 2 of policy == reference
    s = BETA * (ours["logp"] - ours["ref"])
    metrics = theirs["metrics"]
    assert metrics["rewards/chosen"] == pytest.approx(s[:, 0].mean().item(), abs=1e-5)
    assert metrics["rewards/rejected"] == pytest.approx(s[:, 1].mean().item(), abs=1e-5)
    assert metrics["rewards/margins"] == pytest.approx(losses.reward_margin(s[:, 0], s[:, 1]).item(), abs=1e-5)
    assert metrics["rewards/accuracies"] == pytest.approx(losses.reward_accuracy(s[:, 0], s[:, 1]).item())
    assert ours["grads"].keys() == theirs["grads"].keys()
    for name, grad in ours["grads"].items():
        torch.testing.assert_close(grad, theirs["grads"][name], rtol=1e-4, atol=1e-6, msg=name)
