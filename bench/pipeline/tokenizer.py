"""CLIP byte-level BPE tokenizer, built on the `tokenizers` library.

SDXL's two text encoders share one vocabulary (`vocab.json`, `merges.txt`) and differ only in the
padding token: text_encoder pads with `<|endoftext|>`, text_encoder_2 with `!` (as the Swift
pipeline and the Hugging Face `tokenizer_2` do). The pipeline is configured exactly like
transformers' `CLIPTokenizer`: NFC, whitespace runs to one space, lower case; CLIP's word /
number / punctuation split; byte-level alphabet; BPE with the `</w>` end-of-word suffix; start and
end tokens around the text; truncation to 77 keeping the end token; padding to 77.

Apple's Swift `BPETokenizer` splits on spaces only (no punctuation split) and truncates by dropping
the tail, end token included; this module follows Hugging Face instead, which is what the models
were trained with.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    normalizers,
    pre_tokenizers,
    processors,
)
from tokenizers.models import BPE

from bench.errors import ModelFormatError

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
#: CLIP's context length: every SDXL text encoder takes (1, 77) token ids.
MAX_LENGTH = 77
#: Padding token of text_encoder_2 (OpenCLIP bigG), as in the Swift pipeline.
TEXT_ENCODER_2_PAD_TOKEN = "!"

# CLIP's pre-tokenization pattern: special tokens, English contractions, letter runs, single digits,
# runs of other non-space characters.
_CLIP_SPLIT = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)


class PromptTruncatedWarning(UserWarning):
    """A prompt had more tokens than the text encoder takes and was cut."""


@dataclass(frozen=True)
class TokenizedPrompt:
    """Token ids padded / truncated to the encoder length, and what was cut."""

    ids: np.ndarray  # (length,) int64
    length: int  # tokens before padding, start and end tokens included (after truncation)
    truncated_text: str  # the decoded tokens that were cut; "" when nothing was


class CLIPTokenizer:
    """Tokenizes prompts into fixed-length id arrays for one CLIP text encoder."""

    def __init__(
        self,
        vocab: str | Path,
        merges: str | Path,
        *,
        pad_token: str = END_TOKEN,
        max_length: int = MAX_LENGTH,
    ) -> None:
        vocab, merges = Path(vocab), Path(merges)
        for label, path in (("vocab", vocab), ("merges", merges)):
            if not path.is_file():
                raise ModelFormatError(f"tokenizer {label} file {path} does not exist")
        try:
            model = BPE.from_file(
                str(vocab),
                str(merges),
                continuing_subword_prefix="",
                end_of_word_suffix="</w>",
                fuse_unk=False,
                unk_token=END_TOKEN,
            )
        except Exception as error:  # tokenizers raises plain Exceptions for malformed files
            raise ModelFormatError(f"cannot read tokenizer files {vocab} and {merges}: {error}") from error
        tokenizer = Tokenizer(model)
        tokenizer.normalizer = normalizers.Sequence(
            [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
        )
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False),
            ]
        )
        tokenizer.decoder = decoders.ByteLevel()
        ids = {}
        for token in (START_TOKEN, END_TOKEN, pad_token):
            token_id = tokenizer.token_to_id(token)
            if token_id is None:
                raise ModelFormatError(f"tokenizer vocab {vocab} has no token {token!r}")
            ids[token] = token_id
        # Like Hugging Face, the special tokens (the pad token included) match as whole tokens in the
        # text: with pad "!", "wow!!" gives "wow", "!", "!" for text_encoder_2.
        tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ids])
        tokenizer.post_processor = processors.RobertaProcessing(
            (END_TOKEN, ids[END_TOKEN]), (START_TOKEN, ids[START_TOKEN]), trim_offsets=False, add_prefix_space=False
        )
        self._tokenizer = tokenizer
        self.max_length = max_length
        self.pad_token = pad_token
        self.pad_id = ids[pad_token]
        self.start_id = ids[START_TOKEN]
        self.end_id = ids[END_TOKEN]

    def tokenize(self, text: str) -> TokenizedPrompt:
        """Ids of `text`, padded to `max_length`; cuts (and reports) what does not fit.

        Truncation keeps the end token, as Hugging Face's `truncation=True` does.
        """
        ids = list(self._tokenizer.encode(text).ids)
        truncated = ""
        if len(ids) > self.max_length:
            truncated = self.decode(ids[self.max_length - 1 : -1])
            ids = ids[: self.max_length - 1] + [self.end_id]
        length = len(ids)
        ids = ids + [self.pad_id] * (self.max_length - length)
        return TokenizedPrompt(np.asarray(ids, dtype=np.int64), length, truncated)

    def __call__(self, text: str) -> np.ndarray:
        """Ids of `text` as a (1, max_length) array; warns with `PromptTruncatedWarning` if cut."""
        tokenized = self.tokenize(text)
        if tokenized.truncated_text:
            warnings.warn(
                f"prompt longer than {self.max_length} tokens was truncated; dropped: {tokenized.truncated_text!r}",
                PromptTruncatedWarning,
                stacklevel=2,
            )
        return tokenized.ids[None, :]

    def decode(self, ids: list[int] | np.ndarray) -> str:
        """Text of `ids` with special tokens removed (end-of-word markers become spaces)."""
        text = self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)
        return text.replace("</w>", " ").strip()
