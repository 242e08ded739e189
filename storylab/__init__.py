"""storylab: multimodal story-level understanding and generation of visual data.

Foundation: :mod:`storylab.diffusion`, :mod:`storylab.guidance`, :mod:`storylab.metrics`,
:mod:`storylab.training`. Wings: :mod:`storylab.images`, :mod:`storylab.camera`,
:mod:`storylab.humor`, :mod:`storylab.videoqa`. Wings import the foundation, never each other.
"""

__version__ = "0.1.0"
