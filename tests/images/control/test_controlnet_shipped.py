"""The shipped ControlNets: they fit the shipped base, and the demo calls their panel, which renders."""

import torch

from storylab import demo
from storylab.images.assets import DENOISER
from storylab.images.commands.control_cli import controlnet_section, shipped_controlnet
from storylab.images.control.controlnet import load_controlnet
from storylab.images.networks.denoiser import load_digit_model


def test_shipped_controlnets_fit_the_shipped_base_and_record_their_training():
    base = load_digit_model(DENOISER)
    for kind in ("canny", "scribble"):
        net = load_controlnet(shipped_controlnet(kind), base)
        assert net.config.kind == kind
        assert net.extra["command"].startswith("storylab train controlnet")
        curve = net.extra["fidelity"]
        assert curve[0]["step"] == 0 and curve[-1]["fidelity"] > curve[0]["fidelity"]
        assert any(p.abs().sum() > 0 for n, p in net.named_parameters() if "zero_conv" in n)


def test_demo_calls_the_panel_and_it_renders(tmp_path):
    assert any(s.panel is controlnet_section for s in demo.SECTIONS)
    torch.manual_seed(0)
    section = controlnet_section(tmp_path, seed=0, per_condition=2, steps=3)
    assert set(section) >= {"title", "images", "header", "rows", "metrics"}
    assert len(section["rows"]) == 4 and all(len(r) == len(section["header"]) for r in section["rows"])
    assert (tmp_path / "controlnet.png").stat().st_size > 0
