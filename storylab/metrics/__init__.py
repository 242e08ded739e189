"""Foundation: distribution metrics shared by every wing, and a small image classifier for features.

``(real, fake)`` is the argument order of every two-set metric. Imports no wing.
"""

from storylab.metrics.distribution import (density_coverage, distribution_report, frechet_distance,
                                           mean_pairwise_distance, precision_recall, real_floor, vendi_score)
from storylab.metrics.feature_net import (FEATURE_NET_KIND, FeatureNetConfig, SmallImageClassifier, adherence,
                                          extract_features, load_feature_net, predict_classes, save_feature_net)

__all__ = ["FEATURE_NET_KIND", "FeatureNetConfig", "SmallImageClassifier", "adherence", "density_coverage",
           "distribution_report", "extract_features", "frechet_distance", "load_feature_net",
           "mean_pairwise_distance", "precision_recall", "predict_classes", "real_floor", "save_feature_net",
           "vendi_score"]
