"""Should this domain be fine-tuned? Measurements and a verdict before any training."""
