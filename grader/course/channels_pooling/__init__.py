"""The assignment channels_pooling: its exercises, reference solutions, cases and known mistakes."""
