"""Demo data: a synthetic Roboflow COCO export drawn by ffclr itself.

`symbols` draws each of the demo's symbol classes, `scene` lays symbols, wires and distracting
text out on a schematic, and `export` writes train/valid/test splits of such schematics with
their `_annotations.coco.json`, byte-identical for the same seed. Nothing flows in but a seed and
a size; what flows out is an export folder that `ffclr.data` imports like a real one.
"""
