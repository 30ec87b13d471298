"""``honed run`` and the single-stage commands: config, results, stages, runner, resources."""
