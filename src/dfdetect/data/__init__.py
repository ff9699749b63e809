"""Datasets on disk: discovery, safe decoding, transforms, loaders and the synthetic demo set."""
