"""Serving the exported model: the `serve` job (llama-swap entry, a direct llama-server, a vLLM recipe) and the
`bench.serve` job (TTFT, decode tokens/s, requests/s at fixed concurrencies, recorded as gate-like results)."""
