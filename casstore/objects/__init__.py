"""The object layer: chunks, codec, packs and their indexes, the object database, refs and the repository."""
