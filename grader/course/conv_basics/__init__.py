"""The assignment conv_basics: its exercises, reference solutions, cases and known mistakes."""
