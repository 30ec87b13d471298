"""Fine-tuning: config, dataset, losses, sampler, trainer."""
