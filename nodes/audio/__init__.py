"""Audio nodes: live input and files in, features out (spectrum, onsets, beats, pitch,
loudness, MFCC, chroma).  They run in the audio domain, once per hop of the patch."""
