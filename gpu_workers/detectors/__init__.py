"""Face detectors: image -> boxes, 5-point landmarks, confidence (see base.Detector)."""
