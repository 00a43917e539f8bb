"""renderflow.core: the model, its encodings, autoencoders, pipeline and checkpoints."""
