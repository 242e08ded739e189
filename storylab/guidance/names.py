"""Names of the guidance rules and the schedule SPEC grammar (torch-free, for ``--help`` texts)."""

RULES = ("none", "cfg", "negative", "classifier", "cfg++", "apg")
SPEC_HELP = ("constant, linear, invlinear, cosine, sine, v-shape, lambda-shape, clamp:<shape>:c=<floor>, "
             "pcs:s=<exponent>, interval:start=<a>,stop=<b>")
