"""The PostgreSQL + pgvector backend of an index."""
