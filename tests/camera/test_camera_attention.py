"""DIRECTOR's attention helper against torch's own MultiheadAttention with a key padding mask."""

from __future__ import annotations

import torch

from storylab.camera.director import attend


def test_attend_is_multihead_attention_with_key_padding():
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    query, memory = torch.randn(3, 5, 16, requires_grad=True), torch.randn(3, 9, 16)
    pad = torch.zeros(3, 9, dtype=torch.bool)
    pad[0, 4:] = True  # a short sequence
    pad[2, ::2] = True  # scattered padding
    for mask in (pad, None):
        ours = attend(mha, query, memory, mask)
        theirs = mha(query, memory, memory, key_padding_mask=mask, need_weights=False)[0]
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
        grad_ours = torch.autograd.grad(ours.square().sum(), [query, mha.in_proj_weight])
        grad_theirs = torch.autograd.grad(theirs.square().sum(), [query, mha.in_proj_weight])
        for g_ours, g_theirs in zip(grad_ours, grad_theirs):
            torch.testing.assert_close(g_ours, g_theirs, atol=1e-5, rtol=1e-4)
    # padded keys carry no weight: changing them leaves the output unchanged
    changed = memory.clone()
    changed[pad] = 100.0
    torch.testing.assert_close(attend(mha, query, changed, pad), attend(mha, query, memory, pad))
