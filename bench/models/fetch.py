"""Download published model sets from the Hugging Face Hub with `huggingface_hub`.

Only the files a variant needs are requested (`allow_patterns`), into `models_dir()/hub/<owner>--
<repo>/` with the repo's folder structure, so the result is a folder in Apple's layout.
`huggingface_hub` shows per-file progress and resumes interrupted downloads. Without network the
Hub client fails within a second or two; that becomes a `FetchError` naming the variant, the repo
and the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.errors import BenchError
from bench.models.catalog import Variant
from bench.models.zoo import get_variant, hub_dir, hub_files


class FetchError(BenchError):
    """A published variant could not be downloaded (no network, no access, files not in the repo)."""


def _snapshot_download(**kwargs) -> str:
    """`huggingface_hub.snapshot_download`, looked up at call time (tests substitute a fake)."""
    import huggingface_hub

    return huggingface_hub.snapshot_download(**kwargs)


def allow_patterns(variant: Variant, repo_id: str) -> list[str]:
    """Patterns selecting exactly the variant's files in `repo_id` (model folders recursively)."""
    patterns = []
    for source in variant.hub:
        if source.repo_id != repo_id:
            continue
        for part in source.parts:
            path = source.path_in_repo(part)
            patterns.append(f"{path}/*" if path.endswith((".mlmodelc", ".mlpackage")) else path)
    return patterns


def fetch(variant_id: str, *, progress: bool = True) -> Path:
    """Download the files of published variant `variant_id`; return the variant's folder.

    Generated variants need no download: use `bench models build-tiny`.
    """
    variant = get_variant(variant_id)
    if variant.generated:
        raise FetchError(f"{variant.id} is generated locally, not downloaded; run `bench models build-tiny {variant.id}`")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise FetchError(f"cannot fetch {variant.id}: HF_HUB_OFFLINE is set, so the Hugging Face Hub is not contacted")
    for repo_id in dict.fromkeys(source.repo_id for source in variant.hub):
        revision = next(s.revision for s in variant.hub if s.repo_id == repo_id)
        patterns = allow_patterns(variant, repo_id)
        try:
            _snapshot_download(
                repo_id=repo_id,
                revision=revision,
                allow_patterns=patterns,
                local_dir=str(hub_dir(repo_id)),
                **({} if progress else {"tqdm_class": _NoProgress}),
            )
        except Exception as error:  # huggingface_hub / httpx raise many types; all mean "not fetched"
            raise FetchError(_explain(variant, repo_id, error)) from error
    optional = {part for source in variant.hub for part in source.optional}
    missing = [f"{part} ({path})" for part, path in hub_files(variant).items() if part not in optional and not path.exists()]
    if missing:
        raise FetchError(
            f"downloaded {variant.id} but the Hub repo lacks {', '.join(missing)}; the repo layout may have "
            "changed (bench.models.catalog lists the expected names)"
        )
    from bench.models.zoo import variant_folder

    return variant_folder(variant.id)


def _explain(variant: Variant, repo_id: str, error: Exception) -> str:
    reason = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    lowered = str(error).lower()
    if any(word in lowered for word in ("connect", "name or service", "resolve", "network", "timed out", "internet")):
        advice = "no connection to the Hugging Face Hub; check the network, proxy or HF_ENDPOINT"
    elif any(word in lowered for word in ("401", "403", "gated", "unauthorized")):
        advice = "the Hub refused access; log in with `huggingface-cli login` if the repo needs it"
    elif "404" in lowered or "not found" in lowered:
        advice = "the repo or revision was not found on the Hub"
    else:
        advice = "the download failed"
    return f"cannot fetch {variant.id} from huggingface.co/{repo_id}: {advice} ({reason})"


def _no_progress_class():
    from tqdm.auto import tqdm

    class NoProgress(tqdm):
        """tqdm that never draws (`fetch(..., progress=False)`)."""

        def __init__(self, *args, **kwargs) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return NoProgress


class _LazyNoProgress:
    def __call__(self, *args, **kwargs):
        return _no_progress_class()(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(_no_progress_class(), name)


_NoProgress = _LazyNoProgress()
