"""A small CLIP-layout BPE vocabulary (`vocab.json`, `merges.txt`) for the generated model sets.

Layout as in CLIP's files: the 256 byte-level symbols in CLIP's byte order, their 256 `</w>`
(end-of-word) forms, the merged tokens in merge order, then `<|startoftext|>` and `<|endoftext|>`
as the two highest ids (CLIP-L's text encoder finds the end token with argmax over the ids). The
merges are learned on a fixed prompt corpus with deterministic tie-breaking, so the files are the
same on every build. `!` (text_encoder_2's padding token) is one of the byte symbols.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from tokenizers import Regex, pre_tokenizers

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
# CLIP's pre-tokenization split (special tokens, contractions, letters, digits, other symbols).
_CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""

_CORPUS = (
    "a photo of an astronaut riding a horse on mars",
    "a high quality photo of an astronaut riding a dragon in space",
    "a cat sitting on a mat in the sun, highly detailed",
    "an oil painting of a lighthouse at dusk, dramatic lighting, masterpiece",
    "a watercolor of a mountain lake with pine trees and mist",
    "portrait of an old fisherman, 35mm film, shallow depth of field",
    "a futuristic city skyline at night with neon lights and flying cars",
    "a bowl of fruit on a wooden table, still life, soft light",
    "a black and brown dog standing outside a door",
    "a person on a motorcycle makes a turn on the track",
    "inflatable boats sit on the river, and on the bank",
    "a white cat sitting under a white umbrella",
    "black bear standing in a field of grass under a tree",
    "a train parked on tracks with graffiti, mountains in the background",
    "a cake inside of a pan sitting in an oven",
    "a table with paper plates and flowers in a home",
    "a surfing dog on a big wave, action shot, 8k",
    "an isometric illustration of a cozy library with many books",
    "a red sports car driving along a coastal road at sunset",
    "macro photograph of a dew drop on a green leaf",
    "a medieval castle on a hill surrounded by fog, fantasy art",
    "a bustling market street in the rain, cinematic, wide angle",
    "a robot playing chess against a child in a park",
    "minimalist poster of a hot air balloon over the desert",
    "a snowy village with warm lights in the windows at christmas",
    "a close up of a hummingbird drinking nectar from a flower",
    "trending on artstation, unreal engine, octane render, sharp focus",
    "blurry, low quality, deformed, ugly, watermark, text",
)


def bytes_to_unicode() -> dict[int, str]:
    """CLIP / GPT-2's byte -> printable character map, in CLIP's vocabulary order.

    Written out because `tokenizers` exposes this alphabet only as an unordered set.
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def _words() -> dict[tuple[str, ...], int]:
    """Corpus words as symbol tuples (byte-level characters, `</w>` on the last), with counts."""
    splitter = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    counts: dict[tuple[str, ...], int] = {}
    for line in _CORPUS:
        for word, _ in splitter.pre_tokenize_str(line.lower()):
            symbols = tuple(word[:-1]) + (word[-1] + "</w>",)
            counts[symbols] = counts.get(symbols, 0) + 1
    return counts


def _learned_merges(count: int) -> list[tuple[str, str]]:
    """Learn up to `count` BPE merges on the corpus.

    Hand-written because the `tokenizers` trainer breaks ties between equally frequent pairs
    differently from run to run; here ties go to the lexicographically smallest pair, so the
    vocabulary (and every embedding row the text encoders index with it) is reproducible.
    """
    words = _words()
    merges: list[tuple[str, str]] = []
    while len(merges) < count:
        pairs: dict[tuple[str, str], int] = {}
        for symbols, n in words.items():
            for pair in itertools.pairwise(symbols):
                pairs[pair] = pairs.get(pair, 0) + n
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        merged = best[0] + best[1]
        new_words: dict[tuple[str, ...], int] = {}
        for symbols, n in words.items():
            out: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + n
        words = new_words
    return merges


def vocabulary(merge_count: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The vocabulary (token -> id) and merge list of the generated tokenizer."""
    base = list(bytes_to_unicode().values())
    tokens = base + [symbol + "</w>" for symbol in base]
    merges = _learned_merges(merge_count)
    tokens += [a + b for a, b in merges]
    tokens += [START_TOKEN, END_TOKEN]
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    return vocab, merges


def write_tokenizer_files(folder: Path, merge_count: int) -> tuple[Path, Path]:
    """Write `vocab.json` and `merges.txt` into `folder`; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = vocabulary(merge_count)
    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    merges_path.write_text(
        "#version: 0.2 - generated by sdxl-coreml-bench\n" + "".join(f"{a} {b}\n" for a, b in merges),
        encoding="utf-8",
    )
    return vocab_path, merges_path
