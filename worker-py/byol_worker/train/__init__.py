"""Running a training job: one rank's trainer, the process group, checkpoints (sync and background), the coordinator's control and telemetry channels, the local launcher."""
