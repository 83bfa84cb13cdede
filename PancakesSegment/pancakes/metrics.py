"""``pancakes.metrics`` as the README shows it; the metrics live in pancakes.evaluation.metrics.

Kept as a name only (it re-exports), so that ``from pancakes import metrics`` and
``from pancakes.metrics import set_dice`` keep working in users' scripts. It belongs to
evaluation, not to the runtime: nothing in the runtime imports it.
"""
from .evaluation.metrics import (dice, label_usage, per_image_scores, set_dice, set_iou, set_scores,  # noqa: F401
                                 set_surface_distance, surface_distance)
