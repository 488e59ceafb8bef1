"""Merging an adapter into its base: task-vector math (scale, TIES, DARE), PEFT adapter reading, shard streaming."""
