"""The generated vocab.json / merges.txt are a valid CLIP BPE vocabulary."""

from __future__ import annotations

import json

from bench.models.tiny.tokenizer import (
    END_TOKEN,
    START_TOKEN,
    bytes_to_unicode,
    vocabulary,
    write_tokenizer_files,
)


def test_layout_matches_clip(tmp_path):
    vocab_path, merges_path = write_tokenizer_files(tmp_path, 480)
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    base = list(bytes_to_unicode().values())
    assert len(set(base)) == 256
    assert [t for t, i in sorted(vocab.items(), key=lambda kv: kv[1])][:512] == base + [b + "</w>" for b in base]
    assert vocab[START_TOKEN] == len(vocab) - 2 and vocab[END_TOKEN] == len(vocab) - 1
    assert vocab["!"] == 0 and "!</w>" in vocab
    merges = merges_path.read_text(encoding="utf-8").splitlines()
    assert merges[0].startswith("#version") and len(merges) == 481
    for line in merges[1:]:
        left, right = line.split(" ")
        assert left in vocab and right in vocab and left + right in vocab


def test_deterministic():
    assert vocabulary(480) == vocabulary(480)


def test_hf_tokenizers_bpe_and_pipeline_tokenizer_read_it(tmp_path):
    from tokenizers.models import BPE

    vocab_path, merges_path = write_tokenizer_files(tmp_path, 480)
    BPE.from_file(str(vocab_path), str(merges_path), end_of_word_suffix="</w>", unk_token=END_TOKEN)
    from bench.pipeline.tokenizer import CLIPTokenizer

    tokenizer = CLIPTokenizer(vocab_path, merges_path, pad_token="!")
    ids = tokenizer("a photo of an astronaut riding a horse on mars")[0]
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    assert ids[0] == vocab[START_TOKEN] and vocab[END_TOKEN] in ids and ids[-1] == vocab["!"]
    assert len(ids) == 77 and tokenizer.decode(ids) == "a photo of an astronaut riding a horse on mars"
