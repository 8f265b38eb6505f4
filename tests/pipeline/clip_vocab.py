"""A small CLIP-layout vocabulary (vocab.json + merges.txt) trained on the fly for tests.

The real CLIP vocabulary cannot be shipped or downloaded here, so tests train a few hundred BPE
merges with the `tokenizers` trainer over CLIP's pre-tokenization; the files have CLIP's layout
(byte-level alphabet, `</w>` end-of-word suffix, `<|startoftext|>` / `<|endoftext|>`).
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

from bench.pipeline.tokenizer import _CLIP_SPLIT

CORPUS = [
    "a photo of an astronaut riding a horse on mars",
    "A cat, sitting on a mat! It's 2024 and they're happy; we'll see.",
    "high quality, highly detailed, 8k, trending on artstation!!",
    "an oil painting of a lighthouse at dusk -- dramatic lighting (masterpiece)",
    "café crème brûlée, naïve façade: ünïcödé text",
]


def write_clip_vocab(folder: Path, corpus: list[str] = CORPUS, vocab_size: int = 700) -> tuple[Path, Path]:
    """Train a byte-level BPE in CLIP's layout on `corpus`; return (vocab.json, merges.txt)."""
    tokenizer = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix="</w>", unk_token="<|endoftext|>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|startoftext|>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        continuing_subword_prefix="",
        show_progress=False,
    )
    tokenizer.train_from_iterator([line.lower() for line in corpus] * 20, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.model.save(str(folder))
    return folder / "vocab.json", folder / "merges.txt"
