"""Few-shot evaluation and the seed's one-shot vs multi-shot comparison.

Few-shot: for each seed, draw `shots` labelled training crops per class (all of a class when it
has fewer), classify the test crops by the nearest class mean of L2-normalised features (cosine),
and report top-1 and macro-F1 as mean ± 95% confidence interval (Student t) over the seeds.
Nearest-class-mean needs no hyperparameter, so it works from one shot.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ffclr.eval.neighbours import l2_normalise
from ffclr.eval.metrics import classification_metrics

SHOTS = (1, 5, 10)
SEEDS = 10


@dataclass
class FewShotResult:
    shots: int
    seeds: int
    top1_mean: float
    top1_ci95: float
    macro_f1_mean: float
    macro_f1_ci95: float

    def line(self) -> str:
        return (f"{self.shots:>2}-shot: top-1 {self.top1_mean:.3f} ± {self.top1_ci95:.3f}, "
                f"macro-F1 {self.macro_f1_mean:.3f} ± {self.macro_f1_ci95:.3f} ({self.seeds} seeds)")


def mean_ci95(values) -> tuple[float, float]:
    """Mean and half-width of its 95% Student-t confidence interval."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def sample_support(labels: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices: up to `shots` random rows of every class present in `labels`."""
    chosen = []
    for cls in np.unique(labels):
        rows = np.flatnonzero(labels == cls)
        chosen.append(rng.choice(rows, size=min(shots, len(rows)), replace=False))
    return np.sort(np.concatenate(chosen))


def prototype_proba(support: np.ndarray, support_labels: np.ndarray, queries: np.ndarray,
                    n_classes: int, temperature: float = 0.1) -> np.ndarray:
    """Softmax over cosine similarity to each class mean; classes without support get 0."""
    support, queries = l2_normalise(support), l2_normalise(queries)
    prototypes = np.zeros((n_classes, support.shape[1]), dtype=np.float32)
    np.add.at(prototypes, support_labels, support)
    has_support = np.bincount(support_labels, minlength=n_classes) > 0
    logits = (queries @ l2_normalise(prototypes).T) / temperature
    logits[:, ~has_support] = -np.inf
    logits -= logits.max(axis=1, keepdims=True)
    proba = np.exp(logits)
    return proba / proba.sum(axis=1, keepdims=True)


def few_shot(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
             test_labels: np.ndarray, class_names: list[str], shots: int,
             seeds: int = SEEDS) -> FewShotResult:
    top1, macro_f1 = [], []
    for seed in range(seeds):
        rows = sample_support(train_labels, shots, np.random.default_rng(seed))
        proba = prototype_proba(train_features[rows], train_labels[rows], test_features,
                                len(class_names))
        metrics = classification_metrics(test_labels, proba, class_names)
        top1.append(metrics["top1"])
        macro_f1.append(metrics["macro_f1"])
    return FewShotResult(shots, seeds, *mean_ci95(top1), *mean_ci95(macro_f1))


def per_class_figure(per_class_by_model: dict[str, list[dict]], metric: str = "recall",
                     title: str = "Linear probe per class"):
    """Grouped bars, one group per class, one bar per model (the seed's grey one-shot vs orange
    multi-shot chart); `per_class_by_model` maps a model name to `metrics["per_class"]`."""
    import plotly.graph_objects as go

    colours = ["#8c8c8c", "#f28e2b", "#4e79a7", "#59a14f", "#e15759"]
    figure = go.Figure()
    for index, (name, rows) in enumerate(per_class_by_model.items()):
        rows = [r for r in rows if r["support"] > 0]
        figure.add_bar(x=[r["class"] for r in rows], y=[r[metric] for r in rows], name=name,
                       marker_color=colours[index % len(colours)],
                       customdata=[r["support"] for r in rows],
                       hovertemplate="%{x}<br>" + metric + " %{y:.3f}<br>support %{customdata}")
    figure.update_layout(title=title, barmode="group", yaxis_title=f"{metric} on the test split",
                         yaxis_range=[0, 1.05], xaxis_tickangle=-60, height=900, width=1400,
                         template="plotly_white", legend_title="pretraining")
    return figure


def save_figure(figure, path: str | Path) -> list[Path]:
    """Write `<path>.html`, and `<path>.png` when a PNG renderer works here.

    PNG goes through plotly's kaleido when installed, else a headless Chromium via playwright
    (`/usr/bin/chromium`); without either only the HTML is written.
    """
    html = Path(path).with_suffix(".html")
    png = html.with_suffix(".png")
    html.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(html, include_plotlyjs=True)
    written = [html]
    try:
        figure.write_image(png)
        return written + [png]
    except Exception:  # noqa: BLE001 - kaleido absent or without a browser
        pass
    if _screenshot(html, png, figure.layout.width or 1400, figure.layout.height or 600):
        written.append(png)
    return written


def _screenshot(html: Path, png: Path, width: int, height: int) -> bool:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        return False
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(chromium))
            page = browser.new_page(viewport={"width": int(width), "height": int(height)})
            page.goto(html.resolve().as_uri())
            page.wait_for_selector(".main-svg", timeout=20_000)
            page.screenshot(path=str(png))
            browser.close()
        return True
    except Exception:  # noqa: BLE001 - no usable browser: HTML only
        return False
