"""Persona vectors: reading activations, steering hooks, the vector store and its algebra, the
model variants a persona speaks through, transcript monitoring, and how a vector is extracted and
its layer and strength chosen (`extraction`, `sweep`).

May import only data and the ground: the model a vector is read from and swept on is handed in
(`foundry.steering.inputs.SteeringModel`), so training's loaders stay above it.
"""
