"""Text generation: a transformers causal LM (SmolLM2-135M-Instruct bundled), batched decoding."""
