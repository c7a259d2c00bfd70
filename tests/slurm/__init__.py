"""Integration tests against a real single-node SLURM cluster (cluster.sh)."""
