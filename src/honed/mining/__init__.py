"""Training rows: hard negatives, self-supervised pairs, generated queries."""
