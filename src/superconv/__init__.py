"""superconv: a reproduction of Smith & Topin, "Super-Convergence" (arXiv 1708.07120) on CIFAR ResNets."""

__version__ = "0.1.0"
