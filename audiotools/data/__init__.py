"""Audio data: file I/O (`audio`), manifests, segment datasets, WebDataset shards, builders."""
