"""The model: the Wan2.1 transformer and its adapters, the bridge, encodings, autoencoders, the
pipeline and its checkpoints."""
