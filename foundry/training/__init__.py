"""Model weights: base models (the embedded `tiny` one, hub ids and local folders) and their config,
the SFT and DPO trainers and their records, training data, the worker pool, Together's managed
training, adapter loading, generation and scoring through mixed-adapter batches, and the model
persona vectors are read from (`steering_model`).

May import steering (generation applies persona vectors), data and the ground.
"""
