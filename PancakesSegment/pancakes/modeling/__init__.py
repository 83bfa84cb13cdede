"""Network parts of Pancakes, one small module each (UNet, embedding, heads, whole net)."""
from .embedding import protocol_embedding
from .heads import DotProductHead, FaithfulHead
from .pancakes_net import PancakesNet
from .unet import UNet

__all__ = ["UNet", "protocol_embedding", "DotProductHead", "FaithfulHead", "PancakesNet"]
