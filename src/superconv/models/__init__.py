"""CIFAR networks."""
