"""`make check-training`: TRL's DPO and KTO trainers train on the console's exports, two steps each, on CPU.

Not part of `make test` (torch and TRL are large): it runs in its own virtual environment, `.venv-training`. The
exports come from the console's CLI over a real console database; the model is a tiny Llama with random weights and the
tokenizer a word-level one trained here on the exported text, so nothing is fetched from a model hub.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

from console import cli
from tests.export_data import invoice_labels, with_v2, write_db
from tests.label_data import sample_labels

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
# A plain chat template for the conversational exports: each message on its line, a tool call as its JSON.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: "
    "{% if m.get('tool_calls') %}{{ m['tool_calls'] | tojson }}{% else %}{{ m['content'] }}{% endif %}"
    "{% if m['role'] == 'assistant' %}</s>{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """preference and kto exports, written by `approval-console export` from a console database."""
    root = tmp_path_factory.mktemp("training")
    labels = [with_v2(label) for label in [*sample_labels(), *invoice_labels(), *invoice_labels()]]
    data_dir = write_db(root / "data", labels)
    files: dict[str, Path] = {}
    for fmt in ("preference", "kto"):
        for chat in ((), ("--chat",)):
            name = fmt + "".join(chat)
            files[name] = root / f"{name}.jsonl"
            command = ["export", "--data-dir", str(data_dir), "--format", fmt, "--output", str(files[name]), *chat]
            assert cli.main(command) == 0
    return files


def texts(path: Path) -> list[str]:
    """Every text in the export (messages and tool calls as their JSON), and the chat template's own words."""
    found: list[str] = ["user: assistant: system:"]
    for line in path.read_text().splitlines():
        record = json.loads(line)
        for key in ("prompt", "chosen", "rejected", "completion"):
            if key in record:
                found.append(record[key] if isinstance(record[key], str) else json.dumps(record[key]))
    return found


def tokenizer_for(corpus: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained on the exported text: every word it will see has an id."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=SPECIALS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        chat_template=CHAT_TEMPLATE,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )


def tiny_model(tokenizer: PreTrainedTokenizerFast) -> Any:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config)


def common_args(tmp_path: Path) -> dict[str, Any]:
    return {
        "output_dir": str(tmp_path),
        "max_steps": 2,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": True,
        "max_length": 256,
    }


def losses(trainer: Any) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


# Each trainer with its config, and what its export must hold before training means anything.
TRAINERS: dict[str, tuple[Any, Any, Callable[[Any], bool]]] = {
    "preference": (DPOTrainer, DPOConfig, lambda dataset: dataset.num_rows >= 4),
    "kto": (KTOTrainer, KTOConfig, lambda dataset: set(dataset["label"]) == {True, False}),  # both kinds of example
}


@pytest.mark.parametrize("name", ["preference", "preference--chat", "kto", "kto--chat"])
def test_the_trainer_runs_two_steps_on_the_export(exports: dict[str, Path], tmp_path: Path, name: str) -> None:
    """DPO on `preference`, KTO on `kto`, each also in its conversational variant."""
    trainer_class, config_class, usable = TRAINERS[name.removesuffix("--chat")]
    dataset = datasets.load_dataset("json", data_files=str(exports[name]), split="train", cache_dir=str(tmp_path))
    assert usable(dataset), dataset
    tokenizer = tokenizer_for(texts(exports[name]))
    model = tiny_model(tokenizer)
    trainer = trainer_class(
        model=model,
        ref_model=copy.deepcopy(model),  # the frozen reference: the same random weights, built here, not loaded
        args=config_class(**common_args(tmp_path)),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.train()
    assert trainer.state.global_step == 2
    assert len(losses(trainer)) == 2 and all(math.isfinite(loss) for loss in losses(trainer))
