"""Write a MIL program as an `.mlpackage`, fast and byte-for-byte reproducibly.

`ct.convert` runs the frontend, the default (~90 pass) pipeline and the backend pipeline, and
formats the whole program into debug strings on the way: tens of seconds for a tiny UNet. The
generator's programs are already in their final form (see `layers`), so only coremltools' backend
exporter runs here (`mil.backend.mil.load`: MIL -> protobuf + weight.bin via coremltools' blob
writer), then `MLModel.save`. The conversion date is left out of the metadata and the package
manifest's random item identifiers are replaced by ones derived from the item paths, so the same
seed always gives the same bytes (and the build manifest's hashes can prove a folder is intact).
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

import coremltools as ct
from coremltools.converters.mil.backend.mil.load import load as _export_program

#: coremltools deployment target -> Core ML specification version.
SPEC_VERSIONS = {ct.target.iOS16: 7, ct.target.iOS17: 8, ct.target.iOS18: 9}
_MANIFEST_NAMESPACE = uuid.UUID("5c1d2b7e-8e0e-4a47-9a51-2b3f0c7d9e11")


def save_program(prog, path: Path, target, *, metadata: dict[str, str], description: str = "",
                 input_descriptions: dict[str, str] | None = None,
                 output_descriptions: dict[str, str] | None = None) -> Path:
    """Export `prog` (deployment `target`) to the `.mlpackage` at `path` and return `path`."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="bench-weights-") as weights_dir:
        spec = _export_program(prog, weights_dir=weights_dir, specification_version=SPEC_VERSIONS[target])
        spec.description.metadata.userDefined.clear()
        spec.description.metadata.author = "sdxl-coreml-bench tiny-model generator (bench.models.tiny)"
        spec.description.metadata.license = "Generated random weights; no license restrictions"
        spec.description.metadata.shortDescription = description
        spec.description.metadata.versionString = metadata.get("bench.model_version", "")
        for key, value in sorted(metadata.items()):
            spec.description.metadata.userDefined[key] = str(value)
        for feature in spec.description.input:
            feature.shortDescription = (input_descriptions or {}).get(feature.name, "")
        for feature in spec.description.output:
            feature.shortDescription = (output_descriptions or {}).get(feature.name, "")
        model = ct.models.MLModel(spec, weights_dir=weights_dir, skip_model_load=True)
        model.save(str(path))
    make_manifest_deterministic(path)
    return path


def make_manifest_deterministic(package: Path) -> None:
    """Replace the random item UUIDs of an mlpackage's Manifest.json by path-derived ones."""
    manifest_path = Path(package) / "Manifest.json"
    manifest = json.loads(manifest_path.read_text())
    items = manifest.get("itemInfoEntries", {})
    renamed = {}
    mapping = {}
    for old_id, info in items.items():
        new_id = str(uuid.uuid5(_MANIFEST_NAMESPACE, info.get("path", old_id))).upper()
        mapping[old_id] = new_id
        renamed[new_id] = info
    manifest["itemInfoEntries"] = dict(sorted(renamed.items()))
    root = manifest.get("rootModelIdentifier")
    if root in mapping:
        manifest["rootModelIdentifier"] = mapping[root]
    # the exact bytes coremltools' ModelPackage writes when it opens a package (it rewrites the
    # manifest on every load), so reading a package never changes it
    manifest_path.write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n")
