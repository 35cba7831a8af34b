"""Data: a Roboflow COCO export in, crops and the tables that describe them out.

`coco_import` reads an export (folder or .zip, through `export_source`) and writes one crop per
annotated symbol into `<workspace>/datasets/<name>/<split>/<class>/`, recording crops and splits in
the store; `coco_export` writes a dataset, with its label edits, back as a COCO export. `cropset`
reads a split's crops (paths, labels, the full class list) for training and evaluation,
`preprocess` turns an image into the square uint8 pixels and normalised tensors the encoder sees,
and `safe_paths` keeps every name that comes from data inside the workspace or the export.
"""
