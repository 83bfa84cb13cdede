"""Training the click refiner (pancakes.refine.Refiner): examples, seeds, simulated sessions, the trainer.

Usage::

    python -m pancakes.training.refine.train --out runs/refine --init model_weights/refine.pt --minutes 60
"""
