"""Measuring personas: answers to held-out prompts, the content-addressed cache, log-likelihood
scoring in cached batches, the measures and metrics (attribution, stance, belief matrix,
fluency, homogeneity), embeddings, the optional judge, and the report, plots and schema.

May import synthesis, training, steering, data and the ground.
"""
