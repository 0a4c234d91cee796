"""The fine-tuned checkpoint directory: a complete emotion2vec checkpoint that ``load_model(DIR)`` loads.

* ``config.yaml``, ``tokens.txt``, ``configuration.json``: copied byte for byte from the source model;
* ``model.pt``: the source's own ``model.pt`` object (same keys, wrapping and dtypes) with only the head's
  ``proj.weight`` and ``proj.bias`` replaced, so the encoder is bit for bit the source's and the new file's
  sha256 gives the new ``model_version``;
* ``finetune.json``: what was done and measured (sources, sizes, class weights, before/after reports);
* ``MODEL_CARD.md``: the same for people, with the command that reproduces it.

The directory is written next to its final place and renamed into it, so a failed run leaves no half checkpoint.
An existing non-empty ``out`` is replaced only with ``force`` and only when it is an earlier fine-tune output
(it has ``finetune.json``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from emowatch.models.finetune.head import Head
from emowatch.models.loader import _sha12
from emowatch.models.quality.errors import QualityError

__all__ = ["COPIED", "SUMMARY_FILE", "CARD_FILE", "check_out_dir", "model_card", "write_finetuned"]

COPIED = ("config.yaml", "tokens.txt", "configuration.json")  #: files copied from the source (the last: if present)
SUMMARY_FILE = "finetune.json"
CARD_FILE = "MODEL_CARD.md"
_WRAPPERS = ("state_dict", "model_state_dict", "model")  # FunASR's load_pretrained_model unwraps these, in order
_HEAD = ("proj.weight", "proj.bias")


def check_out_dir(out: Path, source: Path, *, force: bool) -> None:
    """Fail fast (:class:`QualityError`) when ``out`` is the source or a non-empty folder we may not replace."""
    out, source = Path(out).resolve(), Path(source).resolve()
    if out == source:
        raise QualityError(f"--out {out} is the source model's directory: write the new checkpoint elsewhere")
    if out.exists() and not out.is_dir():
        raise QualityError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise QualityError(f"--out {out} is not empty (use --force to replace an earlier fine-tune output)")
        if not (out / SUMMARY_FILE).is_file():
            raise QualityError(f"--out {out} is not empty and holds no {SUMMARY_FILE}: not replaced, even with "
                               "--force (it is not an earlier fine-tune output)")


def _inner(obj: Any) -> dict:
    """The state dict inside ``model.pt`` (unwrapped as FunASR does)."""
    for key in _WRAPPERS:
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise QualityError(f"model.pt holds a {type(obj).__name__}, not a state dict")
    return obj


def _head_keys(state: dict) -> tuple[str, str]:
    for prefix in ("", "module."):
        keys = (prefix + _HEAD[0], prefix + _HEAD[1])
        if all(k in state for k in keys):
            return keys
    raise QualityError("model.pt has no proj.weight / proj.bias: not an emotion2vec classifier checkpoint")


def _replaced_state(source: Path, init: Head, head: Head) -> Any:
    """The source's model.pt object with the head replaced; checks that its head is the one in use (``init``)."""
    try:
        obj = torch.load(source / "model.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises assorted types for unreadable files
        raise QualityError(f"cannot read {source / 'model.pt'}: {type(exc).__name__}: {exc}") from None
    state = _inner(obj)
    kw, kb = _head_keys(state)
    old_w, old_b = state[kw], state[kb]
    if tuple(old_w.shape) != init.weight.shape or tuple(old_b.shape) != init.bias.shape:
        raise QualityError(f"{source / 'model.pt'}: head {tuple(old_w.shape)} does not match the loaded model's "
                           f"{init.weight.shape}")
    if not (torch.allclose(old_w.float(), torch.from_numpy(init.weight), atol=1e-6)
            and torch.allclose(old_b.float(), torch.from_numpy(init.bias), atol=1e-6)):
        raise QualityError(f"{source / 'model.pt'}: its head is not the head of the loaded model (FunASR loaded "
                           "other weights?)")
    state[kw] = torch.from_numpy(head.weight.copy()).to(old_w.dtype).contiguous()
    state[kb] = torch.from_numpy(head.bias.copy()).to(old_b.dtype).contiguous()
    return obj


def write_finetuned(source: Path, out: Path, init: Head, head: Head, summary: Mapping[str, Any], *,
                    force: bool = False) -> tuple[str, dict[str, Any]]:
    """Write the checkpoint (see the module's text); returns ``(model_version, summary with the version)``."""
    source, out = Path(source), Path(out)
    check_out_dir(out, source, force=force)
    missing = [name for name in COPIED[:2] + ("model.pt",) if not (source / name).is_file()]
    if missing:
        raise QualityError(f"the source model directory {source} lacks {', '.join(missing)}")
    state = _replaced_state(source, init, head)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name in COPIED:
            if (source / name).is_file():
                shutil.copyfile(source / name, tmp / name)
        torch.save(state, tmp / "model.pt")
        version = _sha12(tmp / "model.pt")
        done = {**summary, "model_version": version}
        (tmp / SUMMARY_FILE).write_text(json.dumps(done, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / CARD_FILE).write_text(model_card(done), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)  # checked above: empty, or an earlier fine-tune output (with --force)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return version, done


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _table(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    lines = ["| metric | before | after |", "|---|---|---|"]
    for key, name in (("accuracy", "accuracy (WA)"), ("ua", "UA"), ("macro_f1", "macro-F1")):
        lines.append(f"| {name} | {_fmt(before[key])} | {_fmt(after[key])} |")
    for c, row in after["per_class"].items():
        if row["support"]:
            lines.append(f"| F1 {c} (n={row['support']}) | {_fmt(before['per_class'][c]['f1'])} | {_fmt(row['f1'])} |")
    return lines


def model_card(s: Mapping[str, Any]) -> str:
    """``MODEL_CARD.md`` from a ``finetune.json`` summary."""
    src, ex, opt, tr = s["source"], s["examples"], s["options"], s["training"]
    weights = ", ".join(f"{c} {w:.3f}" for c, w in s["class_weights"].items() if w)
    frozen = ", ".join(s["frozen_classes"]) or "none"
    lines = [
        f"# Fine-tuned head: {s['model_version']}", "",
        f"A new classification head (`proj`) on the encoder of **{src['name']}** (version `{src['version']}`); "
        "the encoder's weights are the source's, bit for bit. Load it like any checkpoint: "
        "`EMOWATCH_MODEL__MODEL=<this directory>`.", "",
        f"* Labels: `{s['labels_file']}` ({ex['rows']} labelled rows), embeddings from "
        f"{'stored chunk embeddings (ClickHouse scores, --from-history)' if s['from_history'] else 'the audio files'}"
        + (f", chunks since {s['since']}" if s.get("since") else "") + ".",
        f"* Examples: {ex['total']} ({ex['train']} train from {ex['rows_train']} rows, {ex['held_out']} held out from "
        f"{ex['rows_held_out']} rows; split by labelled row, stratified by label, {opt['holdout']:g} held out, "
        f"seed {opt['seed']}).",
        f"* Class weights (inverse frequency, mean 1 per training example): {weights}.",
        f"* Classes without training labels keep the source head's rows: {frozen}.",
        f"* Training: Adam lr {tr['lr']:g}, {tr['steps_run']} of {opt['steps']} steps, best held-out macro-F1 at "
        f"step {tr['best_step']} (checked every {opt['eval_every']} steps, patience {opt['patience']}).", "",
        f"## Held-out split ({ex['held_out']} examples)", "",
        *_table(s["held_out"]["before"], s["held_out"]["after"]), "",
        "The held-out split also chose the training step, so its *after* numbers lean optimistic; evaluate on a "
        "separate labelled set (`emowatch model evaluate`) before rolling out.", "",
        f"## Training split ({ex['train']} examples)", "",
        *_table(s["train"]["before"], s["train"]["after"]), "",
        "## Reproduce", "", "```bash", s["command"], "```", "",
        "Then compare it with production: `emowatch rescore --model <this directory> ...`, "
        "`emowatch replay --scores-topic ... --diff` (README, \"A new classification head\").", "",
    ]
    return "\n".join(lines)
