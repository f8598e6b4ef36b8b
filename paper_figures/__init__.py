"""Figures and the reproduction report, drawn from the results store (and optionally the author's Caffe logs)."""
