"""Models: one file a model, sharing the heads of heads.py and the layers of layers.py."""
