"""Learned features and images: latent walks, spectrogram autoencoders, GANs.

Node modules here import torch only inside ``configure``, so a patch without torch
nodes never loads it."""

#: Helpers that import torch at once: the registry does not scan them for node types.
NOT_NODE_MODULES = ("models", "fastgen", "chunks")
