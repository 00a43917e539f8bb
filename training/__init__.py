"""RenderFlow training: synthetic data, datasets, losses, stages, metrics, rf-train and rf-eval."""
