"""CLIP image/text embeddings and CLIP score from a local CLIP folder (Radford et al. 2021; Hessel et al. 2021).

Inception weights for FID are not available offline, so the text-to-image study computes the
Fréchet distance, precision/recall/density/coverage and diversity on the *projected CLIP image
embeddings* (``visual_projection`` of the vision tower's pooled output) of the same local CLIP the
CLIP score uses. Those numbers are comparable within one run (one CLIP), not with published
Inception FIDs. CLIP score follows torchmetrics' convention: 100 * max(cos(image, text), 0),
averaged over images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from storylab.errors import StorylabError


class ClipEmbedder:
    """A local CLIP (``transformers`` CLIPModel + processor saved in one folder), frozen, in eval mode."""

    def __init__(self, folder: str | Path, batch_size: int = 32) -> None:
        from transformers import CLIPModel, CLIPProcessor
        from transformers.utils import logging as transformers_logging

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise StorylabError(f"--clip {folder}: not a CLIP folder (no config.json)")
        transformers_logging.disable_progress_bar()
        try:
            self.model = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
            self.processor = CLIPProcessor.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise StorylabError(f"--clip {folder}: cannot load a CLIP model and processor ({exc})") from None
        finally:
            transformers_logging.enable_progress_bar()
        self.folder = folder
        self.batch_size = batch_size

    @property
    def feature_name(self) -> str:
        """What the features are, for the study JSON."""
        return f"projected CLIP image embeddings (visual_projection of the pooled vision output) of {self.folder}"

    @torch.no_grad()
    def image_features(self, images: Sequence[Any]) -> torch.Tensor:
        """(N, D) projected image embeddings of PIL images."""
        out = []
        for i in range(0, len(images), self.batch_size):
            pixels = self.processor(images=list(images[i:i + self.batch_size]), return_tensors="pt")["pixel_values"]
            pooled = self.model.vision_model(pixel_values=pixels).pooler_output
            out.append(self.model.visual_projection(pooled))
        return torch.cat(out).float()

    @torch.no_grad()
    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, D) projected text embeddings."""
        tokens = self.processor(text=list(texts), return_tensors="pt", padding=True, truncation=True)
        pooled = self.model.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).pooler_output
        return self.model.text_projection(pooled).float()


def clip_score(image_feats: torch.Tensor, text_feats: torch.Tensor) -> float:
    """Mean of 100 * max(cos(image_i, text_i), 0) over matching rows (torchmetrics' CLIPScore convention)."""
    if image_feats.shape != text_feats.shape:
        raise StorylabError(f"CLIP score needs one text per image, got {tuple(image_feats.shape)} vs {tuple(text_feats.shape)}")
    cos = torch.nn.functional.cosine_similarity(image_feats, text_feats, dim=-1)
    return float((100 * cos.clamp(min=0)).mean())
