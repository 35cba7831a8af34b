"""ffclr: contrastive learning for the symbols on fire-protection schematics."""

__version__ = "0.1.0"
