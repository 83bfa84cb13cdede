"""Evaluation apart from the runtime: Set Dice and friends (metrics), and the classical baselines.

Usage::

    from pancakes.evaluation.metrics import set_dice
    from pancakes.evaluation.baselines import BASELINES
"""
