"""`nas predict`: a trained network on raw images, an image folder, or a config's test split."""
