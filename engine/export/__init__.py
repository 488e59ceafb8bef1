"""GGUF export: merged HF model → llama.cpp converter → quantised files → fidelity checked against HF."""
