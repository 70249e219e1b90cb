"""Whole-store operations over a repository: garbage collection, fsck, statistics and diffs."""
