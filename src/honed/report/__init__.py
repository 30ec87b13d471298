"""The run's report: markdown, plots, model card (reads pipeline's result types only)."""
