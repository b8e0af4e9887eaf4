"""The BYOL computation on one device: model, loss, one training step, optimizer, LR/tau schedules, batched augmentation, precision, CUDA graph and side stream."""
