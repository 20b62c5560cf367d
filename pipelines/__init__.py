"""Ray Data programs: reindex (a collection's index rebuilt into a new snapshot) and, later,
backfill. Each runs from the CLI (`busque reindex ...`), as `python -m pipelines.<name>` under
`ray job submit`, and as a job (`POST /v1/jobs {"model": "reindex"}`)."""
