"""mvd-edge: MVD cross-modal (visible/infrared) person re-identification, from training to edge engines."""

__version__ = "0.1.0"
