"""Published constants of E.T. / DIRECTOR (Courant et al., ECCV 2024), as recorded in research/camera.md.

Schedules may be added, but never changed: these numbers define the feature space of every shipped
checkpoint and the tag set of every caption.
"""

from __future__ import annotations

import numpy as np

FPS = 25
MAX_FRAMES = 300  # E.T. trajectories have at most 300 frames; DIRECTOR pads to this length.

# Camera features: frame 0 translation is standardised with the shift constants, later frames'
# translation deltas with the norm constants (world units, OpenCV axes).
CAM_SHIFT_MEAN = np.array([0.00201, -0.27489, -1.23617])
CAM_SHIFT_STD = np.array([1.1343, 1.1906, 1.5874])
CAM_DELTA_MEAN = np.array([7.94e-5, -9.99e-5, 4.13e-4])
CAM_DELTA_STD = np.array([0.02784, 0.01820, 0.03139])
# Character features: per-frame position deltas (velocities), standardised.
CHAR_DELTA_MEAN = np.array([6.68e-5, -5.08e-5, -7.78e-4])
CHAR_DELTA_STD = np.array([0.0105, 0.00696, 0.01145])

# Motion tagging thresholds (units per second) and smoothing.
CAM_STATIC_THRESHOLD = 0.02
CAM_DIFF_THRESHOLD = 0.4
CHAR_STATIC_THRESHOLD = 0.22
CHAR_DIFF_THRESHOLD = 0.32
# E.T.'s smoothing parameter is 56; the official filter covers frames i-28..i+28 (57 frames, truncated at
# the ends) and leaves tag sequences shorter than 56 unsmoothed.
MODE_FILTER_WINDOW = 56
MIN_SEGMENT_FRAMES = 25

# Axis names (x, y, z) for the positive and negative direction; OpenCV axes: x right, y down, z forward.
CAMERA_AXIS_NAMES = (("trucking_right", "trucking_left"), ("boom_bottom", "boom_top"), ("push_in", "pull_out"))
CHARACTER_AXIS_NAMES = (("move_right", "move_left"), ("move_down", "move_up"),
                        ("move_forward", "move_backward"))
# storylab before issue 14 wrote "moves_*"; accepted when reading
LEGACY_CHARACTER_PREFIX = "moves_"
NUM_CLASSES = 27
