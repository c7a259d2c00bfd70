"""A tiny T5 encoder and tokenizer saved to a folder (or to a Hugging Face cache under a
Hub name), loaded back through the real `from_pretrained` path (nothing can be downloaded
here); items with the shipped music's metadata."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audiotools.data.manifest import read_manifest
from audiotools.environment import DATASETS_DIR

WORDS = ("a string quartet playing chorale at bpm by bach piano solo church organ accordion "
         "low quality noisy calm music").split()


def save_tiny_t5(folder: Path) -> Path:
    """A word-level tokenizer (lowercased, `</s>` appended) and a 1-layer T5 with d_model 16."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2,
             **{word: index + 3 for index, word in enumerate(sorted(set(WORDS)))}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(vocab), d_model=16, d_kv=4, d_ff=32, num_layers=1,
                      num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    T5EncoderModel(config).save_pretrained(folder)
    return folder


def cache_tiny_t5(cache: Path, name: str) -> Path:
    """A Hugging Face hub cache (`HF_HUB_CACHE`) holding the tiny T5 under the repository
    `name`, laid out as the Hub's downloads leave it (refs/main naming a snapshot)."""
    repo = cache / f"models--{name.replace('/', '--')}"
    commit = "0" * 40
    save_tiny_t5(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return cache


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory) -> Path:
    return save_tiny_t5(tmp_path_factory.mktemp("tiny_t5"))


@pytest.fixture(scope="session")
def music_items() -> list[dict[str, Any]]:
    """`info` of the first shipped music files, as SegmentDataset gives it."""
    entries = read_manifest(DATASETS_DIR / "music_small" / "train.jsonl")[:4]
    return [{"path": entry["path"], "seek_time": 2.0, "seconds_start": 2.0,
             "seconds_total": entry["duration"], "sample_rate": entry["sample_rate"],
             "channels": entry["channels"], "meta": entry.get("meta", {})}
            for entry in entries]
