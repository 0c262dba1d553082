"""The pretrained-transfer baseline arm (Kensert et al. 2019; DESIGN.md section 7): `nas baseline`.

ImageNet ResNet50 and InceptionV3 (torchvision) and InceptionResNetV2 (timm), weights from a local file only,
every layer fine-tuned through the shared trainer and the NAS arm's own folds and aggregation. `nas report`
reads the results with `load_baseline_results(run_dir)` and the paper's figures from `PAPER_ACCURACY` /
`paper_accuracy(dataset, model)`; importing this package loads neither torch nor the networks.
"""

from nas.transfer.results import PAPER_ACCURACY, load_baseline_results, paper_accuracy

__all__ = ["PAPER_ACCURACY", "load_baseline_results", "paper_accuracy"]
