"""Learned features and images: latent walks, spectrogram autoencoders, GANs.

Node modules here import torch only inside ``configure``, so a patch without torch
nodes never loads it."""
