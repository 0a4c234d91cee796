"""Load an emotion2vec model through FunASR's ``AutoModel`` (hub id or local directory).

``load_model`` is the only entry point other packages use::

    from emowatch.models.loader import load_model
    model = load_model("models/demo")            # or "iic/emotion2vec_plus_large"
    engine = model.engine(max_batch=32)
    results = engine.infer_batch(windows)

Hub ids are first looked up in the local ModelScope / Hugging Face caches so that a
pre-downloaded model loads without network; otherwise FunASR tries to download it and a
failure becomes a :class:`ModelLoadError` that says how to point ``EMOWATCH_MODEL__MODEL`` at a
local directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from emowatch.models.funasr_import import import_funasr
from emowatch.streams.resources import demo_model_dir
from emowatch.topics.errors import EmowatchError
from emowatch.topics.model_io import FRAME_MS, SAMPLE_RATE

if TYPE_CHECKING:  # pragma: no cover
    from emowatch.models.engine import Engine

__all__ = [
    "ModelLoadError",
    "EmotionModel",
    "load_model",
    "resolve_device",
    "resolve_precision",
    "parse_label",
    "quiet_funasr_logging",
]

log = logging.getLogger(__name__)

_HINT = (
    "Set EMOWATCH_MODEL__MODEL to a local checkpoint directory containing config.yaml, model.pt "
    "and tokens.txt (for example EMOWATCH_MODEL__MODEL=models/demo for the bundled pipeline-demo "
    "model, or the directory you downloaded iic/emotion2vec_plus_large into with "
    "`modelscope download --model iic/emotion2vec_plus_large --local_dir <dir>`)."
)


class ModelLoadError(EmowatchError, RuntimeError):
    """The model could not be loaded (missing weights, unreachable hub, bad device...)."""


@dataclass
class EmotionModel:
    """A loaded emotion2vec model plus the metadata emowatch publishes with every score.

    Attributes:
        name: hub id or local checkpoint name.
        version: ``sha256(model.pt)[:12]`` for local directories, ``<hub id>@<revision>``
            for hub downloads.
        labels: English class labels in model output order (``生气/angry`` -> ``angry``,
            ``<unk>`` -> ``unknown``); ``unuse*`` tokens keep their name and are masked.
        masked: indices of ``unuse*`` classes (probability forced to 0, as FunASR does).
        sample_rate: ``SAMPLE_RATE`` (16000).  frame_ms: ``FRAME_MS`` (20).
        device: torch device string the module lives on.
        dtype: compute dtype (``torch.bfloat16``/``float16`` under autocast on GPU,
            ``torch.float32`` otherwise).
        automodel: the ``funasr.AutoModel`` (``generate`` still works on it).
        module: the underlying ``torch.nn.Module`` (funasr ``Emotion2vec``).
        path: local directory the weights came from (None if unknown).
    """

    name: str
    version: str
    labels: list[str]
    masked: list[int]
    device: str
    dtype: torch.dtype
    automodel: Any
    module: torch.nn.Module
    path: Path | None = None
    tokens: list[str] = field(default_factory=list)
    sample_rate: int = SAMPLE_RATE
    frame_ms: int = FRAME_MS

    @property
    def n_labels(self) -> int:
        """Number of model classes (columns of the logits)."""
        return len(self.labels)

    def engine(self, **opts: Any) -> Engine:
        """Create a batched :class:`~emowatch.models.engine.Engine` (see its options)."""
        from emowatch.models.engine import Engine

        return Engine(self, **opts)


def parse_label(token: str) -> str:
    """Map a tokens.txt entry to emowatch's English label (``开心/happy`` -> ``happy``)."""
    token = token.strip()
    if token == "<unk>":
        return "unknown"
    return token.rsplit("/", 1)[-1]


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; explicit CUDA must exist."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"device {device!r} requested but CUDA is not available; use device='auto' or 'cpu'"
        )
    return device


def resolve_precision(precision: str, device: str) -> torch.dtype:
    """``auto`` -> bf16 on CUDA (fp16 if bf16 is unsupported), fp32 elsewhere."""
    p = precision.lower()
    if p == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
             "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    if p not in table:
        raise ModelLoadError(f"unknown precision {precision!r}; use auto, fp32, bf16 or fp16")
    dtype = table[p]
    if dtype != torch.float32 and not device.startswith("cuda"):
        raise ModelLoadError(f"precision {precision!r} is only supported on CUDA, not {device!r}")
    return dtype


def _sha12(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def _local_dir(model: str) -> Path | None:
    """An existing directory for ``model``: as given, or relative to the project root (the
    repository, or the installed ``emowatch/`` folder: ``models/demo`` works from anywhere)."""
    p = Path(os.path.expanduser(model))
    if p.is_dir():
        return p.resolve()
    root = demo_model_dir().parents[1]
    if not p.is_absolute() and (root / p).is_dir():
        return (root / p).resolve()
    return None


def _looks_like_path(model: str) -> bool:
    """True for things that can only be paths (hub ids are ``org/name`` or a bare alias)."""
    return (
        os.path.isabs(model)
        or model.startswith((".", "~"))
        or model.count("/") > 1
        or "\\" in model
        or os.path.exists(model)
    )


def _cached_hub_dir(model_id: str) -> Path | None:
    """Find a complete pre-downloaded copy of ``model_id`` in the ModelScope/HF caches."""
    org_name = model_id.split("/")
    roots: list[Path] = []
    ms = os.environ.get("MODELSCOPE_CACHE")
    ms_root = Path(ms) if ms else Path.home() / ".cache" / "modelscope"
    roots += [ms_root / "hub" / "models" / model_id, ms_root / "hub" / model_id,
              ms_root / "models" / model_id]
    for base in (ms_root / "models" / "--".join(org_name), ms_root / "hub" / "models" / "--".join(org_name)):
        snaps = base / "snapshots"
        if snaps.is_dir():
            roots += sorted(snaps.iterdir())
    hf = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface")), "hub")
    snaps = Path(hf) / ("models--" + "--".join(org_name)) / "snapshots"
    if snaps.is_dir():
        roots += sorted(snaps.iterdir())
    for r in roots:
        if (r / "config.yaml").is_file() and (r / "model.pt").is_file():
            return r
    return None


def _check_local_dir(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise ModelLoadError(f"model directory {str(path)!r} does not exist. {_HINT}")
    missing = [f for f in ("config.yaml", "model.pt", "tokens.txt") if not (path / f).is_file()]
    if missing:
        raise ModelLoadError(
            f"model directory {str(path)!r} is missing {', '.join(missing)} "
            f"(weights not downloaded or incomplete copy). {_HINT}"
        )
    try:
        cfg = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ModelLoadError(f"{path / 'config.yaml'} is not valid YAML: {e}") from e
    if cfg.get("model") != "Emotion2vec":
        raise ModelLoadError(
            f"{path / 'config.yaml'} declares model {cfg.get('model')!r}, expected 'Emotion2vec'"
        )
    return cfg


@contextlib.contextmanager
def quiet_funasr_logging() -> Iterator[None]:
    """Undo FunASR's process-wide logging changes.

    Importing funasr calls ``logging.basicConfig(level=INFO)`` and ``AutoModel`` calls it
    again; both would install a root handler and lower the root level for the whole
    process.  The root logger's handlers and level are restored afterwards.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)


def _build_automodel(model_arg: str, device: str, hub: str, revision: str | None) -> Any:
    with quiet_funasr_logging():
        AutoModel = import_funasr().AutoModel  # noqa: N806 (FunASR's class)

    kwargs: dict[str, Any] = {
        "model": model_arg,
        "disable_update": True,
        "device": device,
        "hub": hub,
        "ncpu": torch.get_num_threads(),  # AutoModel otherwise resets torch threads to 4
        "disable_pbar": True,
        "log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel() or logging.WARNING),
    }
    if revision:
        kwargs["model_revision"] = revision
    with quiet_funasr_logging():
        return AutoModel(**kwargs)


def load_model(
    model: str,
    *,
    device: str = "auto",
    precision: str = "auto",
    hub: str = "auto",
    revision: str | None = None,
    offline: bool | None = None,
    threads: int = 0,
) -> EmotionModel:
    """Load an emotion2vec model (hub id such as ``iic/emotion2vec_plus_large`` or a dir).

    Args:
        model: hub id (``iic/emotion2vec_plus_large``, ``emotion2vec/emotion2vec_plus_base``)
            or a local checkpoint directory (``models/demo``).
        device: ``auto`` (cuda if available, else cpu), ``cpu``, ``cuda``, ``cuda:N``.
        precision: ``auto`` (bf16/fp16 on CUDA, fp32 on CPU), ``fp32``, ``bf16``, ``fp16``.
        hub: ``auto`` (``emotion2vec/...`` ids -> Hugging Face, else ModelScope), ``ms``, ``hf``.
        revision: hub revision (default: the hub's default branch).
        offline: never try to download; defaults to True when ``HF_HUB_OFFLINE`` or
            ``EMOWATCH_MODEL__OFFLINE`` is set to 1.
        threads: torch's intra-op threads in this process (``torch.set_num_threads``); 0 keeps torch's
            default (one per core). A service that shares the machine with others does better with 1
            (docs/benchmarks.md, "Agent threads").

    Raises:
        ModelLoadError: weights missing, hub unreachable, bad config, device or precision.
    """
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    if threads < 0:
        raise ModelLoadError(f"threads must be >= 0 (0: torch's default), got {threads}")
    if threads:
        torch.set_num_threads(threads)
    if offline is None:
        offline = any(os.environ.get(v, "") in ("1", "true", "True")
                      for v in ("EMOWATCH_MODEL__OFFLINE", "HF_HUB_OFFLINE"))
    hub_id: str | None = None
    local = _local_dir(model)
    if local is not None:
        pass
    elif _looks_like_path(model):
        raise ModelLoadError(f"model directory {model!r} does not exist. {_HINT}")
    else:
        hub_id = model
        local = _cached_hub_dir(model)
        if local is None and offline:
            raise ModelLoadError(
                f"model {model!r} is not in the local ModelScope/Hugging Face cache and "
                f"downloads are disabled (offline). {_HINT}"
            )
    if hub == "auto":
        hub = "hf" if model.startswith("emotion2vec/") else "ms"

    if local is not None:
        cfg = _check_local_dir(local)
        try:
            am = _build_automodel(str(local), dev, hub, None)
        except Exception as e:  # FunASR raises bare exceptions / asserts
            raise ModelLoadError(f"FunASR could not load {str(local)!r}: {e}. {_HINT}") from e
        name = hub_id or str(cfg.get("emowatch", {}).get("name") or local.name)
        version = f"{hub_id}@{revision or local.name}" if hub_id else _sha12(local / "model.pt")
    else:
        assert hub_id is not None
        try:
            am = _build_automodel(hub_id, dev, hub, revision)
        except Exception as e:
            raise ModelLoadError(
                f"could not download or load model {hub_id!r} from hub {hub!r} "
                f"(no network or wrong id?): {e}. {_HINT}"
            ) from e
        name, version = hub_id, f"{hub_id}@{revision or 'master'}"
        mp = am.kwargs.get("model_path")
        local = Path(mp) if mp and os.path.isdir(mp) else None

    module = am.model
    if module.__class__.__name__ != "Emotion2vec" or getattr(module, "proj", None) is None:
        raise ModelLoadError(
            f"{model!r} did not load as an Emotion2vec classifier (got "
            f"{module.__class__.__name__}, proj={getattr(module, 'proj', None) is not None}). {_HINT}"
        )
    tokenizer = am.kwargs.get("tokenizer")
    tokens = list(getattr(tokenizer, "token_list", None) or [])
    if len(tokens) != module.proj.out_features:
        raise ModelLoadError(
            f"{model!r}: tokens.txt has {len(tokens)} entries but the classifier has "
            f"{module.proj.out_features} outputs"
        )
    labels = [parse_label(t) for t in tokens]
    masked = [i for i, t in enumerate(tokens) if t.startswith("unuse")]
    module.eval()
    return EmotionModel(
        name=name, version=version, labels=labels, masked=masked, device=dev, dtype=dtype,
        automodel=am, module=module, path=local, tokens=tokens,
    )
