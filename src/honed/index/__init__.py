"""Serving: the index folder, its streaming build, quantisation, ANN, the planner, PostgreSQL."""
