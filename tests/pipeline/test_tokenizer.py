from __future__ import annotations

import itertools
import json
import unicodedata
import warnings

import numpy as np
import pytest
import regex

from bench.errors import ModelFormatError
from bench.pipeline.tokenizer import (
    _CLIP_SPLIT,
    END_TOKEN,
    MAX_LENGTH,
    START_TOKEN,
    CLIPTokenizer,
    PromptTruncatedWarning,
)
from tests.pipeline.clip_vocab import write_clip_vocab

PROMPTS = [
    "a photo of an astronaut riding a horse on mars",
    "A Photo   of an\tASTRONAUT,\nriding a horse on Mars!!",
    "",
    "   ",
    "It's 2024 and they're happy; we'll see.",
    "high quality, highly detailed, 8k, trending on artstation!!",
    "café crème brûlée, naïve façade: ünïcödé text",
    "zebra xylophone quokka (unseen words) <|endoftext|> inside",
    "emoji 🚀 and CJK 猫 characters",
]
LONG_PROMPT = ", ".join(["a very detailed oil painting of a lighthouse at dusk"] * 12)


@pytest.fixture(scope="module")
def vocab_files(tmp_path_factory):
    return write_clip_vocab(tmp_path_factory.mktemp("clip_vocab"))


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2 / CLIP byte-level alphabet: printable bytes map to themselves, the rest to 256+.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _oracle_ids(text: str, vocab: dict[str, int], merges: list[tuple[str, str]]) -> list[int]:
    """OpenAI CLIP's simple BPE, written independently of `tokenizers` (padding with end token)."""
    ranks = {pair: i for i, pair in enumerate(merges)}
    byte_chars = _bytes_to_unicode()
    text = regex.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).lower()
    ids = [vocab[START_TOKEN]]
    for piece in regex.findall(_CLIP_SPLIT, text):
        if piece in (START_TOKEN, END_TOKEN):
            ids.append(vocab[piece])
            continue
        chars = "".join(byte_chars[b] for b in piece.encode("utf-8"))
        word = list(chars[:-1]) + [chars[-1] + "</w>"]
        while len(word) > 1:
            pairs = set(itertools.pairwise(word))
            best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
            if best not in ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        ids.extend(vocab.get(token, vocab[END_TOKEN]) for token in word)
    ids.append(vocab[END_TOKEN])
    if len(ids) > MAX_LENGTH:
        ids = ids[: MAX_LENGTH - 1] + [vocab[END_TOKEN]]
    return ids + [vocab[END_TOKEN]] * (MAX_LENGTH - len(ids))


@pytest.mark.parametrize("prompt", PROMPTS + [LONG_PROMPT])
def test_matches_independent_clip_bpe(vocab_files, prompt):
    vocab_path, merges_path = vocab_files
    vocab = json.loads(vocab_path.read_text())
    merges = [tuple(line.split()) for line in merges_path.read_text().splitlines()[1:] if line.strip()]
    tokenizer = CLIPTokenizer(vocab_path, merges_path)
    assert tokenizer.tokenize(prompt).ids.tolist() == _oracle_ids(prompt, vocab, merges)


@pytest.mark.torch
@pytest.mark.parametrize("pad_token", [END_TOKEN, "!"])
@pytest.mark.parametrize("prompt", PROMPTS + [LONG_PROMPT])
def test_matches_transformers_clip_tokenizer(vocab_files, prompt, pad_token):
    transformers = pytest.importorskip("transformers")
    vocab_path, merges_path = vocab_files
    reference = transformers.CLIPTokenizer.from_pretrained(
        str(vocab_path.parent), pad_token=pad_token, model_max_length=MAX_LENGTH
    )
    expected = reference(prompt, padding="max_length", max_length=MAX_LENGTH, truncation=True).input_ids
    ours = CLIPTokenizer(vocab_path, merges_path, pad_token=pad_token)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PromptTruncatedWarning)
        assert ours(prompt)[0].tolist() == expected


def test_text_encoder_2_pads_with_exclamation_mark(vocab_files):
    vocab = json.loads(vocab_files[0].read_text())
    ids = CLIPTokenizer(*vocab_files, pad_token="!").tokenize("a cat").ids
    first = CLIPTokenizer(*vocab_files).tokenize("a cat").ids
    length = int(np.flatnonzero(first == vocab[END_TOKEN])[0]) + 1
    assert ids[:length].tolist() == first[:length].tolist()
    assert set(ids[length:].tolist()) == {vocab["!"]}
    assert set(first[length:].tolist()) == {vocab[END_TOKEN]}
    assert ids.shape == (MAX_LENGTH,) and ids[0] == vocab[START_TOKEN]


def test_long_prompt_is_truncated_with_warning_keeping_end_token(vocab_files):
    tokenizer = CLIPTokenizer(*vocab_files)
    with pytest.warns(PromptTruncatedWarning, match="truncated") as caught:
        ids = tokenizer(LONG_PROMPT)
    assert ids.shape == (1, MAX_LENGTH)
    assert ids[0, -1] == tokenizer.end_id
    assert "lighthouse" in str(caught[0].message)
    assert tokenizer.tokenize(LONG_PROMPT).length == MAX_LENGTH


def test_short_prompt_does_not_warn(vocab_files):
    tokenizer = CLIPTokenizer(*vocab_files)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenized = tokenizer.tokenize("a cat")
        tokenizer("a cat")
    assert tokenized.truncated_text == ""
    assert tokenized.length < MAX_LENGTH


def test_missing_or_broken_files_name_the_file(tmp_path, vocab_files):
    with pytest.raises(ModelFormatError, match="merges"):
        CLIPTokenizer(vocab_files[0], tmp_path / "nope.txt")
    broken = tmp_path / "vocab.json"
    broken.write_text("{not json")
    with pytest.raises(ModelFormatError, match="vocab.json"):
        CLIPTokenizer(broken, vocab_files[1])
    no_pad = tmp_path / "small.json"
    no_pad.write_text(json.dumps({START_TOKEN: 0, END_TOKEN: 1}))
    (tmp_path / "m.txt").write_text("#version: 0.2\n")
    with pytest.raises(ModelFormatError, match="'!'"):
        CLIPTokenizer(no_pad, tmp_path / "m.txt", pad_token="!")
