"""Image data sets of the images wing: scikit-learn's digits, IDX files (Fashion-MNIST, MNIST), the metrics' reference file."""
