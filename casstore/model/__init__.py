"""The model layer: manifests, ingest and read-back of files, domain histories and states."""
