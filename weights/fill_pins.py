"""Look up the Hub revision and sha256 of every unpinned weight record on the Hub: timm's, and the project's
own once ``python -m weights.publish --all-trained`` has uploaded them (needs network access).

    python -m weights.fill_pins            # prints a `_PINS` block to paste into keras_resnets/weights/catalog.py
    python -m weights.fill_pins --check    # also re-checks the pins already recorded (exit 1 on a mismatch)
    python -m weights.fill_pins --only resnet34.tv_in1k resnet101.tv_in1k

For each repository, ``HfApi().model_info(repo, files_metadata=True)`` gives the current commit
(``sha``) and, per file, the LFS sha256. A recorded pin is never changed silently: ``--check``
reports any difference.
"""

from __future__ import annotations

import argparse
import pathlib
import sys


from keras_resnets.weights import catalog


def hub_pin(api, repo_id: str, filename: str):
    """(commit, sha256 of `filename`) of `repo_id`'s current main branch on the Hub."""
    info = api.model_info(repo_id, files_metadata=True)
    for sibling in info.siblings or []:
        if sibling.rfilename == filename:
            if sibling.lfs is None:
                raise RuntimeError(f"{repo_id}/{filename} is not an LFS file; no sha256 available")
            return info.sha, sibling.lfs.sha256
    raise RuntimeError(f"{repo_id} has no file {filename!r}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="also verify the pins already recorded")
    parser.add_argument("--only", nargs="*", help="record names to look up (default: all published records)")
    args = parser.parse_args(argv)
    from huggingface_hub import HfApi

    api = HfApi()
    status = 0
    lines = []
    for record in catalog.list_weights():
        if not record.published or (args.only and record.name not in args.only):
            continue
        if record.pinned:
            if args.check:
                # The pinned commit may be older than main; what must not change is the file at that commit.
                pinned_sha256 = hub_sha256_at(api, record)
                if pinned_sha256 != record.sha256:
                    print(f"MISMATCH {record.name}: recorded sha256 {record.sha256}, the Hub has "
                          f"{pinned_sha256} at {record.revision}", file=sys.stderr)
                    status = 1
            lines.append(f'    "{record.name}": ("{record.revision}", "{record.sha256}"),')
        else:
            revision, sha256 = hub_pin(api, record.repo_id, record.filename)
            lines.append(f'    "{record.name}": ("{revision}", "{sha256}"),')
    print("_PINS = {")
    print("\n".join(lines))
    print("}")
    return status


def hub_sha256_at(api, record):
    """sha256 of `record`'s file at its pinned revision (None if absent or not LFS)."""
    info = api.model_info(record.repo_id, revision=record.revision, files_metadata=True)
    for sibling in info.siblings or []:
        if sibling.rfilename == record.filename and sibling.lfs is not None:
            return sibling.lfs.sha256
    return None


if __name__ == "__main__":
    sys.exit(main())
