"""`hygie render-batch`: many render jobs (a JSON Lines or CSV manifest) on Ray.

manifest.py  the job list: one job per line, checked line by line (a bad line fails alone)
state.py     OUTDIR/batch.json: each job's state, duration, frames and error; what to skip on a re-run
worker.py    the Ray actor: avatars from the object store, loaded once per worker; one job at a time
runner.py    the driver: Ray (embedded or a cluster), scheduling, retries, progress, Ctrl-C, summary
"""
