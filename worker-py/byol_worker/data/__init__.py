"""Training and evaluation data: datasets, the deterministic per-step sampler and loader, the data-layout checks, the CIFAR converter."""
