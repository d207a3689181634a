"""How the question meets the image: one registered layer class a file (see registry).

Built in: concat, elementwise and mfb read the image vector; relation, film and referent the grid.
"""

# The built-in fusions register themselves on import.
from vqa.models.fusions.concat import ConcatFusion
from vqa.models.fusions.elementwise import ElementwiseFusion
from vqa.models.fusions.film import FiLMModule
from vqa.models.fusions.mfb import MFBFusion
from vqa.models.fusions.referent import ReferentRelation
from vqa.models.fusions.registry import (
    FUSIONS,
    READS,
    canonical_options,
    check_fusion,
    fusion_options,
    get_fusion,
    make_fusion,
    register_fusion,
)
from vqa.models.fusions.relation import RelationModule

__all__ = [
    "FUSIONS",
    "READS",
    "canonical_options",
    "ConcatFusion",
    "ElementwiseFusion",
    "FiLMModule",
    "MFBFusion",
    "ReferentRelation",
    "RelationModule",
    "check_fusion",
    "fusion_options",
    "get_fusion",
    "make_fusion",
    "register_fusion",
]
