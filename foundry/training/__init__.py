"""Model weights: base models (the embedded `tiny` one, hub ids and local folders) and their config,
the SFT and DPO trainers and their records, training data, the worker pool, Together's managed
training, adapter loading, and generation and scoring through mixed-adapter batches.

May import steering (generation applies persona vectors), data and the ground.
"""
