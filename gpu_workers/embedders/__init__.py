"""Face embedders: aligned face crops -> L2-normalised vectors (see base.Embedder)."""
