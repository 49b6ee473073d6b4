"""Built-in content masks (``mask`` kind): which pixels of a generated image count.

CAGC scores and distils inside the face region a BiSeNet face parser finds; a mask component
maps generated images in [-1, 1] to a {0, 1} mask, so that the parser can be swapped for an
offline fallback (the whole image, a spectral-residual saliency map) and the report can name
which one a number comes from.
"""

from __future__ import annotations

# Options by path: a module is imported only when a spec names one of its components.
_O = "vemkit_plugins.masks.options"


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    module = "vemkit_plugins.masks.content"
    registry.add("mask", "whole", options=f"{_O}:WholeMaskOptions", factory=f"{module}:build_whole")
    registry.add(
        "mask", "saliency", options=f"{_O}:SaliencyMaskOptions", factory=f"{module}:build_saliency"
    )
    registry.add(
        "mask",
        "face_parser",
        options=f"{_O}:FaceParserMaskOptions",
        factory=f"{module}:build_face_parser",
        example={"weights": "weights/face_parsing/79999_iter.pth"},
    )
