"""Ranking documents for queries: exact dense search, BM25, fusion."""
