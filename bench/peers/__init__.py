"""The job queues users would pick instead of busque, as bench/jobs.py runs them: each module
holds that library's app and the same no-op task (`noop(n)` -> {"echo": n}), importable by its
workers (`celery -A bench.peers.celery_tasks`, `rq worker-pool` running
`bench.peers.rq_tasks.noop`, `procrastinate --app=bench.peers.procrastinate_tasks.app`), which
find their server in BENCH_REDIS_URL or BENCH_PROCRASTINATE_DSN."""
