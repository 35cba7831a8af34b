"""Linear probes on frozen features, fitted on a training split only.

`fit_probe` (default, "lbfgs"): standardise the features, then a multinomial logistic regression
(L-BFGS, scikit-learn) whose inverse regularisation `C` is chosen by stratified
cross-validation on the training rows it is given; nothing else is ever seen.
"adam": the seed's probe — a linear layer trained with Adam and focal loss for a fixed number of
epochs — with no selection at all.

A `Probe` is plain arrays over the dataset's full class list; classes absent from training get
probability 0. It saves to `.npz` (no pickle) and loads with `allow_pickle=False`.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ffclr.data.npz_files import READ_ERRORS, npz_path
from ffclr.errors import FfclrError
from ffclr.eval.metrics import accuracy, macro_f1

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
MAX_FOLDS = 5
CV_ROWS = 20_000
"""Cross-validation (choosing C, out-of-fold probabilities) fits on at most this many rows, a
stratified sample: its cost stops growing with the dataset, and the final probe still fits on
every row."""
METHODS = ("lbfgs", "adam")


@dataclass
class Probe:
    class_names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    """(n_classes, feature_dim); rows of classes absent from training are zero."""
    intercept: np.ndarray
    trained: np.ndarray
    """(n_classes,) bool: the class had training crops."""
    method: str = "lbfgs"
    info: dict = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return self.coef.shape[1]

    def decision(self, features: np.ndarray) -> np.ndarray:
        standardised = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        logits = standardised @ self.coef.T + self.intercept
        logits[:, ~self.trained] = -np.inf
        return logits

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(N, n_classes) probabilities over the dataset's full class list."""
        if np.asarray(features).shape[-1] != self.feature_dim:
            raise FfclrError(f"probe expects {self.feature_dim}-d features, got "
                             f"{np.asarray(features).shape[-1]}-d (probe of another encoder?)")
        logits = self.decision(features)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.argmax(self.decision(features), axis=1)

    def save(self, path: str | Path) -> Path:
        path = npz_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"class_names": self.class_names, "method": self.method, "info": self.info}
        np.savez(path, mean=self.mean, scale=self.scale, coef=self.coef,
                 intercept=self.intercept, trained=self.trained,
                 meta=np.array(json.dumps(meta, default=float)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Probe":
        path = Path(path) if Path(path).is_file() else npz_path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                return cls(class_names=list(meta["class_names"]), mean=data["mean"],
                           scale=data["scale"], coef=data["coef"], intercept=data["intercept"],
                           trained=data["trained"].astype(bool), method=meta["method"],
                           info=meta.get("info", {}))
        except FileNotFoundError:
            raise FfclrError(f"{path}: no such probe file") from None
        except READ_ERRORS as exc:
            raise FfclrError(f"{path}: not a probe saved by ffclr "
                             f"({type(exc).__name__}: {exc})") from None


def fit_standardiser(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features)
    return scaler.mean_, scaler.scale_


def _logistic_path(features: np.ndarray, labels: np.ndarray, n_classes: int,
                   grid: tuple[float, ...], max_iter: int = 500):
    """(C, coef, intercept) over all classes for each C of `grid` in increasing order, each fit
    warm-started from the previous one; rows are standardised already.

    One thread: scikit-learn's OpenMP loss loops slow down many-fold when the cores are
    oversubscribed, and these fits are small.
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    present = np.unique(labels)
    model = LogisticRegression(max_iter=max_iter, solver="lbfgs", warm_start=True)
    for c in sorted(grid):
        coef = np.zeros((n_classes, features.shape[1]))
        intercept = np.full(n_classes, -np.inf)
        if len(present) == 1:
            intercept[present[0]] = 0.0
            yield c, coef, intercept
            continue
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            model.set_params(C=c).fit(features, labels)
        if len(present) == 2:
            coef[present[1]], intercept[present[1]] = model.coef_[0], model.intercept_[0]
            intercept[present[0]] = 0.0
        else:
            coef[present], intercept[present] = model.coef_, model.intercept_
        yield c, coef, intercept


def fit_logistic(features: np.ndarray, labels: np.ndarray, n_classes: int, c: float):
    return next(_logistic_path(features, labels, n_classes, (c,), max_iter=1000))[1:]


def cv_folds(labels: np.ndarray, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds of the given rows; classes with fewer crops than folds stay in training
    folds where they can (scikit-learn spreads them as far as they go)."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(labels)
    n_splits = int(min(MAX_FOLDS, max(2, counts[counts > 0].max())))
    if len(labels) < n_splits:
        raise FfclrError(f"only {len(labels)} training crops: too few to cross-validate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(labels, labels))


def stratified_sample(labels: np.ndarray, rows: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of about `rows` rows keeping each class's share, every class with at least
    `MAX_FOLDS` rows (or all it has); all rows when there are no more than `rows`."""
    labels = np.asarray(labels)
    if len(labels) <= rows:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    kept = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        share = max(MAX_FOLDS, round(rows * len(members) / len(labels)))
        kept.append(rng.choice(members, min(share, len(members)), replace=False))
    return np.sort(np.concatenate(kept))


def out_of_fold_proba(features: np.ndarray, labels: np.ndarray, n_classes: int,
                      grid: tuple[float, ...], folds: list | None = None,
                      progress=None, fit_rows: int | None = None) -> dict[float, np.ndarray]:
    """For each C: probabilities of every row from a probe fitted on the other folds only
    (scaler refitted per fold); with `fit_rows`, each fold's probe fits on a stratified sample
    of at most that many of its training rows."""
    features = np.asarray(features, dtype=np.float64)
    folds = folds or cv_folds(labels)
    proba = {c: np.zeros((len(labels), n_classes)) for c in grid}
    for step, (train_rows, held_rows) in enumerate(folds):
        if fit_rows is not None:
            train_rows = train_rows[stratified_sample(labels[train_rows], fit_rows, step)]
        mean, scale = fit_standardiser(features[train_rows])
        held = (features[held_rows] - mean) / scale
        for c, coef, intercept in _logistic_path((features[train_rows] - mean) / scale,
                                                 labels[train_rows], n_classes, grid):
            logits = held @ coef.T + intercept
            logits -= logits.max(axis=1, keepdims=True)
            exp = np.exp(logits)
            proba[c][held_rows] = exp / exp.sum(axis=1, keepdims=True)
        if progress:
            progress(step + 1, len(folds), "choosing C by cross-validation")
    return proba


def select_c(features: np.ndarray, labels: np.ndarray, n_classes: int,
             grid: tuple[float, ...] = C_GRID, progress=None
             ) -> tuple[float, dict, np.ndarray | None]:
    """The `C` with the best out-of-fold macro-F1 (`metrics.macro_f1`'s convention; ties: higher
    accuracy, then smaller C), a summary of the search, and that C's out-of-fold probabilities
    of every row, or None beyond `CV_ROWS` rows, where the search runs on a stratified sample
    of them (`out_of_fold_proba` with `fit_rows` gives every row's then).
    """
    sample = stratified_sample(labels, CV_ROWS)
    features, labels = np.asarray(features), np.asarray(labels)
    folds = cv_folds(labels[sample])
    oof = out_of_fold_proba(features[sample], labels[sample], n_classes, grid, folds, progress)
    scores = {}
    for c, proba in oof.items():
        predicted = proba.argmax(axis=1)
        scores[c] = (macro_f1(labels[sample], predicted), accuracy(labels[sample], predicted))
    best = max(grid, key=lambda c: (scores[c][0], scores[c][1], -c))
    info = {"C": best, "cv_folds": len(folds), "cv_rows": len(sample),
            "cv_macro_f1": {str(c): s[0] for c, s in scores.items()},
            "cv_top1": {str(c): s[1] for c, s in scores.items()}}
    return best, info, oof[best] if len(sample) == len(labels) else None


def fit_probe(features: np.ndarray, labels: np.ndarray, class_names: list[str],
              method: str = "lbfgs", epochs: int = 100, batch_size: int = 256,
              loss_fn: str = "focal", seed: int = 0, progress=None) -> Probe:
    """A probe fitted on these (training) rows only."""
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = len(class_names)
    if len(labels) == 0:
        raise FfclrError("no training crops to fit a probe on")
    trained = np.bincount(labels, minlength=n_classes) > 0
    mean, scale = fit_standardiser(features)
    standardised = (features - mean) / scale
    if method == "lbfgs":
        c, info, _ = select_c(features, labels, n_classes, progress=progress)
        coef, intercept = fit_logistic(standardised, labels, n_classes, c)
    elif method == "adam":
        coef, intercept = _fit_adam(standardised, labels, n_classes, epochs, batch_size,
                                    loss_fn, seed)
        info = {"epochs": epochs, "batch_size": batch_size, "loss_fn": loss_fn}
    else:
        raise FfclrError(f"unknown probe method {method!r} (choose from {', '.join(METHODS)})")
    intercept = np.where(trained, intercept, 0.0)
    return Probe(class_names=list(class_names), mean=mean, scale=scale, coef=coef,
                 intercept=intercept, trained=trained, method=method, info=info)


def focal_loss(logits, targets, gamma: float = 2.0):
    """Mean focal loss (Lin et al. 2017) of a batch of logits: cross-entropy weighted by (1 - p)^gamma."""
    import torch.nn.functional as F

    log_p = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    return (-(1 - log_p.exp()) ** gamma * log_p).mean()


def _fit_adam(features: np.ndarray, labels: np.ndarray, n_classes: int, epochs: int,
              batch_size: int, loss_fn: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The seed's linear probe: Adam (lr 3e-4, weight decay 8e-4), fixed epochs, last epoch kept."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(labels)
    head = torch.nn.Linear(x.shape[1], n_classes)
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-4, weight_decay=8e-4)
    criterion = focal_loss if loss_fn == "focal" else F.cross_entropy
    for _ in range(epochs):
        for rows in torch.randperm(len(y), generator=generator).split(batch_size):
            loss = criterion(head(x[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return head.weight.detach().double().numpy(), head.bias.detach().double().numpy()
