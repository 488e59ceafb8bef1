"""Training data: KLEJ instructions, the replay set, the mix, and the contamination guard every builder runs."""
