"""Models and their embeddings: loading, precision, the embedding cache, sharding, rotation, dims."""
