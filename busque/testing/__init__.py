"""Throwaway real servers and tiny randomly initialised models for tests and benchmarks.

`servers`: PostgreSQL and SeaweedFS (S3) started on free loopback ports and stopped afterwards;
`tiny_models`: CLIP and Stable Diffusion checkpoints built offline with random weights; `app`:
the real Serve application started as `busque serve` starts it. Only tests/ and bench/ import
this package; busque's own code never does.
"""
