"""Keras layers shared by encoders and decoders."""
