"""Using exported models outside training."""
