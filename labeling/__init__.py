"""Labeler side: lease the top items, submit labels (idempotent), skip."""
