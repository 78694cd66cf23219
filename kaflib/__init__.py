"""kaflib: kernel activation functions and adversarial robustness, after the 2020 Sapienza thesis."""

from kaflib.activations import ACTIVATIONS, get_activation
from kaflib.batchnorm import FusedOrderBatchNormalization
from kaflib.kaf import KAF, KAFRandomInitializer, KAFRidgeInitializer, KAFSmoothInitializer
from kaflib.kwta import KWTA
from kaflib.models import MODELS, build_model, light_cnn, resnet, resnet20, resnet56, vgg_inspired

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "FusedOrderBatchNormalization", "KAF", "KAFRandomInitializer", "KAFRidgeInitializer",
    "KAFSmoothInitializer", "KWTA", "MODELS", "build_model", "get_activation",
    "light_cnn", "resnet", "resnet20", "resnet56", "vgg_inspired",
]
