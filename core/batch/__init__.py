"""`hygie render-batch`: many render jobs (a JSON Lines or CSV manifest) on Ray.

manifest.py  the job list: one job per line, checked line by line (a bad line fails alone)
state.py     OUTDIR/batch.json: each job's state, duration, frames and error; what a re-run skips
plan.py      the checks before Ray starts: avatars verified once, audio probed and hashed
cluster.py   Ray itself: embedded on this machine (127.0.0.1 only) or an existing cluster joined
worker.py    the Ray actor: avatars from the object store, loaded once per worker; one job at a time
runner.py    the driver: scheduling, retries, progress, Ctrl-C, summary
"""
