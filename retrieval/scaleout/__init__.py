"""Work on a Ray cluster: `--ray ADDRESS` (Ray is an optional extra, imported only here)."""
