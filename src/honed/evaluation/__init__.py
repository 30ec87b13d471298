"""Scoring runs against qrels: metrics, runs, significance, evidence."""
