"""Names of the guidance rules and the schedule SPEC grammar (torch-free, for ``--help`` texts)."""

RULES = ("none", "cfg", "negative", "negative3", "classifier", "cfg++", "apg", "apg-mix", "autoguidance",
         "cfg-zero*", "tcfg", "fdg", "pag", "seg", "slg")
RULE_ALIASES = {"cfgpp": "cfg++", "cfg-zero-star": "cfg-zero*", "cfgzero*": "cfg-zero*", "cfg-zero": "cfg-zero*",
                "autoguide": "autoguidance", "auto": "autoguidance", "apgmix": "apg-mix", "skip-layer": "slg",
                "perturbed-attention": "pag", "smoothed-energy": "seg"}
# Rules that guide with a second network: AutoGuidance's weak model, or the perturbed self-attention of PAG/SEG/SLG.
RULE_NETWORKS = {"autoguidance": "weak", "pag": "perturbed", "seg": "perturbed", "slg": "perturbed"}
SPEC_HELP = ("constant, linear, invlinear, cosine, sine, v-shape, lambda-shape (v-shape@slide / lambda-shape@slide: "
             "the slide's literal formulas, min(p, 1-p) / max(p, 1-p)), clamp:<shape>:c=<floor>, "
             "pcs:s=<exponent> (the lecture's formula, value = scale at the last step), pcs-mean:s=<exponent> "
             "(mean-normalised), pcs-dec:s=<exponent> (decreasing, value = scale at the first step; CogVideoX's "
             "dynamic CFG is pcs-dec:s=5@start), interval:start=<a>,stop=<b> (progress, closed), "
             "remove:start=<a>,stop=<b> (guided except on [a, b]), "
             "diffusers-interval:start=<a>,stop=<b> (int(aN) <= i < int(bN)), interval:sigma_lo=<lo>,sigma_hi=<hi> "
             "(noise level), piecewise:<scale>x<steps>+... (e.g. piecewise:3x3+7x45; fractions of sampling with "
             "decimal counts, piecewise:3x0.1+7x0.9), list:<s0> <s1> ... or list:<file> (one scale per step; "
             "piecewise and list give absolute scales, --scale is not used); append @paper for the paper's step grid "
             "t/T, t = 1..T, @start for i/N (default @endpoints, i/(N-1))")
GRIDS = ("endpoints", "paper", "start")
# Bumped whenever a schedule definition changes; recorded in every study JSON (see the README changelog).
SCHEDULE_VERSION = 2


def parse_scales(text: str) -> list[float]:
    """The guidance scales of a ``--scales`` list ("1.5,3,5"); one clear line when it is empty or not numbers."""
    from storylab.errors import StorylabError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise StorylabError(f"--scales must be comma-separated numbers, got '{text}'") from None
    if not values:
        raise StorylabError("--scales is empty")
    return values
