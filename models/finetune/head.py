"""Train a new classification head (``proj``: logits = ``x @ W.T + b``) on embeddings, starting from the current one.

* Class weights: inverse class frequency in the training examples, normalised so that the mean weight per
  training example is 1 (``n / (K * n_c)`` for the ``K`` classes present; scikit-learn's ``"balanced"``).
* Classes absent from the training labels keep their rows of the original head (weights and bias, bit for bit):
  nothing teaches them, so nothing moves them. They still take part in the softmax, as at inference, so the
  trained classes learn to beat them where the labels say so. The model's ``unuse*`` classes stay masked.
* Optimiser: Adam on the weighted cross-entropy, full batch (or seeded mini-batches), on standardised features
  (the train set's mean and standard deviation, folded back into ``W`` and ``b`` afterwards, so the learning rate
  does not depend on the encoder's feature scale). Adam moves every weight by about ``lr`` per step, so a logit by
  ``lr x sqrt(dim)`` to ``lr x dim``: the default learning rate is ``DEFAULT_LR_SCALE / sqrt(dim)`` (0.003 for
  the demo model's 96
  dimensions, 0.0009 for emotion2vec+ large's 1024). No randomness but the mini-batch order: the same data and
  options give the same head.
* Model selection: every ``eval_every`` steps the held-out macro-F1 (ties: the lower held-out loss) is compared
  with the best so far, starting with the original head at step 0; the best head is returned, and training stops
  after ``patience`` evaluations without improvement. The held-out set therefore chose the head: its "after"
  numbers are slightly optimistic, and a separate test set (``emowatch model evaluate``) is the unbiased check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from emowatch.models.finetune.examples import Examples
from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.metrics import report

__all__ = ["DEFAULT_LR_SCALE", "Head", "Trained", "class_weights", "default_lr", "train_head"]

DEFAULT_LR_SCALE = 0.03  #: the default learning rate is this / sqrt(embedding dimension)


@dataclass
class Head:
    """A linear head: ``weight`` (classes, dim) and ``bias`` (classes,), float32."""

    weight: np.ndarray
    bias: np.ndarray

    @classmethod
    def of(cls, proj: torch.nn.Linear) -> Head:
        return cls(proj.weight.detach().to("cpu", torch.float32).numpy().copy(),
                   proj.bias.detach().to("cpu", torch.float32).numpy().copy())

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32) @ self.weight.T + self.bias

    def predict(self, x: np.ndarray, masked: Sequence[int] = ()) -> np.ndarray:
        """Class index per row (``masked`` classes never win)."""
        lg = self.logits(x).astype(np.float64)
        if len(masked):
            lg[:, list(masked)] = -np.inf
        return lg.argmax(axis=1)


@dataclass
class Trained:
    """The chosen head, its step, the steps run, the learning rate, the class weights and the evaluation curve."""

    head: Head
    best_step: int
    steps_run: int
    lr: float
    weights: dict[str, float]
    curve: list[dict] = field(default_factory=list)  # {step, train_loss, held_loss, held_macro_f1}


def default_lr(dim: int) -> float:
    """The learning rate used when none is given (see the module's text)."""
    return DEFAULT_LR_SCALE / float(np.sqrt(max(dim, 1)))


def class_weights(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Per class (``classes`` order): ``n / (K * n_c)`` for the ``K`` classes present in ``labels``, else 0."""
    counts = np.array([sum(1 for lab in labels if lab == c) for c in classes], dtype=np.float64)
    present = counts > 0
    out = np.zeros(len(classes), dtype=np.float64)
    out[present] = len(labels) / (present.sum() * counts[present])
    return out


def _targets(ex: Examples, classes: Sequence[str]) -> torch.Tensor:
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({lab for lab in ex.labels if lab not in index})
    if unknown:
        raise QualityError(f"labels {unknown} are not classes of the model ({', '.join(classes)})")
    return torch.tensor([index[lab] for lab in ex.labels], dtype=torch.long)


def train_head(train: Examples, held: Examples, init: Head, classes: Sequence[str], *, masked: Sequence[int] = (),
               steps: int = 300, lr: float | None = None, seed: int = 0, eval_every: int = 10, patience: int = 10,
               batch_size: int = 0, progress: Callable[[int, int], None] | None = None) -> Trained:
    """Train from ``init`` on ``train``, select on ``held`` (see the module's text); ``batch_size`` 0: full batch;
    ``lr`` None: :func:`default_lr`.

    ``progress(step, steps)`` after every evaluation."""
    if not len(train) or not len(held):
        raise QualityError(f"need training and held-out examples (got {len(train)} and {len(held)})")
    if steps < 0 or eval_every < 1 or (lr is not None and lr <= 0) or patience < 0 or batch_size < 0:
        raise QualityError(f"invalid training options: steps={steps}, lr={lr}, eval_every={eval_every}, "
                           f"patience={patience}, batch_size={batch_size}")
    k, dim = init.weight.shape
    if train.dim != dim or held.dim != dim or len(classes) != k:
        raise QualityError(f"embeddings of size {train.dim} and {len(classes)} classes do not fit the model's head "
                           f"({k} x {dim}): were they computed by this model?")
    lr = default_lr(dim) if lr is None else float(lr)
    y, y_held = _targets(train, classes), _targets(held, classes)
    cw = class_weights(train.labels, classes)
    frozen = torch.from_numpy(cw == 0)
    mask = torch.zeros(k)
    mask[list(masked)] = float("-inf")

    mu = train.x.astype(np.float64).mean(axis=0)
    sd = train.x.astype(np.float64).std(axis=0)
    sd[sd < 1e-8] = 1.0
    z = torch.from_numpy(((train.x - mu) / sd).astype(np.float32))
    z_held = torch.from_numpy(((held.x - mu) / sd).astype(np.float32))
    w0 = init.weight.astype(np.float64)
    w = torch.tensor(w0 * sd, dtype=torch.float32, requires_grad=True)  # the same function on standardised input
    b = torch.tensor(init.bias.astype(np.float64) + w0 @ mu, dtype=torch.float32, requires_grad=True)
    weight_t = torch.from_numpy(cw.astype(np.float32))
    opt = torch.optim.Adam([w, b], lr=lr)
    rng = np.random.default_rng(seed)

    def loss_of(zz: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(zz @ w.T + b + mask, yy, weight=weight_t)

    def evaluate(step: int, train_loss: float) -> tuple[float, float]:
        with torch.no_grad():
            lg = z_held @ w.T + b + mask
            held_loss = float(F.cross_entropy(lg, y_held, weight=weight_t))
            pred = [classes[i] for i in lg.argmax(dim=1).tolist()]
        f1 = float(report(held.labels, pred, classes)["macro_f1"])
        curve.append({"step": step, "train_loss": round(train_loss, 6), "held_loss": round(held_loss, 6),
                      "held_macro_f1": round(f1, 6)})
        return f1, held_loss

    curve: list[dict] = []
    with torch.no_grad():
        first_loss = float(loss_of(z, y))
    best_f1, best_loss = evaluate(0, first_loss)
    best = (w.detach().clone(), b.detach().clone(), 0)
    stale, step = 0, 0
    n = len(train)
    order = np.arange(n)
    while step < steps:
        if batch_size and batch_size < n:
            order = rng.permutation(n)
        for lo in range(0, n, batch_size or n):
            idx = torch.from_numpy(order[lo:lo + (batch_size or n)])
            opt.zero_grad()
            loss = loss_of(z[idx], y[idx])
            loss.backward()
            w.grad[frozen] = 0.0  # type: ignore[index]
            b.grad[frozen] = 0.0  # type: ignore[index]
            opt.step()
            step += 1
            if step % eval_every == 0 or step == steps:
                f1, held_loss = evaluate(step, float(loss.detach()))
                if (f1, -held_loss) > (best_f1, -best_loss):
                    best_f1, best_loss, stale = f1, held_loss, 0
                    best = (w.detach().clone(), b.detach().clone(), step)
                else:
                    stale += 1
                if progress is not None:
                    progress(step, steps)
            if step >= steps or (patience and stale >= patience):
                break
        if patience and stale >= patience:
            break
    if best[2] == 0:
        frozen = torch.ones(k, dtype=torch.bool)
    return Trained(_fold(best[0], best[1], mu, sd, init, frozen.numpy()), best[2], step, lr,
                   {c: float(v) for c, v in zip(classes, cw)}, curve)


def _fold(w: torch.Tensor, b: torch.Tensor, mu: np.ndarray, sd: np.ndarray, init: Head, frozen: np.ndarray) -> Head:
    """The head on raw embeddings: ``W = W' / sd``, ``b = b' - W @ mu``; frozen rows exactly the original's (all
    of them when the original head was the best: step 0)."""
    ws = w.numpy().astype(np.float64) / sd
    weight = ws.astype(np.float32)
    bias = (b.numpy().astype(np.float64) - ws @ mu).astype(np.float32)
    weight[frozen] = init.weight[frozen]
    bias[frozen] = init.bias[frozen]
    return Head(weight, bias)
