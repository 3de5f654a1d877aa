"""MNIST-family and USPS loaders (torchvision formats, offline mirrors first). Filled in by the data work."""
