"""Text embeddings (all-MiniLM-L6-v2 bundled): sentence vectors for /v1/embeddings and jobs."""
