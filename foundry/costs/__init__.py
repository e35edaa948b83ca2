"""What a debate and a persona set-up cost under each way of serving personas: the `costs:`
config section, the inputs measured from this project, and the arithmetic.

May import synthesis, training, steering, data and the ground (it reads their records).
"""
