"""Evaluation: a checkpoint and labelled crops in, scores, maps and predictions out.

`embedding` computes (and caches) backbone features of a crop set; `neighbours` is the one cosine
nearest-neighbour search; on top of those, `probe` fits linear probes, `knn` and `fewshot` score
the features without training, `metrics` turns predictions into per-class and overall scores,
`explore` lays the features out with UMAP and ranks outliers and likely label errors, and
`classify` labels new crops. `evaluate` ties them together for the probe command and the app.
"""
