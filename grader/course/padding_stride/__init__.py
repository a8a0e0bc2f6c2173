"""The assignment padding_stride: its exercises, reference solutions, cases and known mistakes."""
