"""Fine-tuning: config, dataset, losses (masked too), sampler, dev evaluator, trainer."""
