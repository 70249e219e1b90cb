"""Foundation: file-system helpers, names, identities, locks, threads, progress. Imports nothing above it."""
