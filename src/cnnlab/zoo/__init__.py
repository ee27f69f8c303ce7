"""The architecture zoo: one file per family, each registering its builders on import."""

from cnnlab.zoo import (  # noqa: F401  (imported for registration)
    alexnet,
    googlenet,
    lenet,
    resnet,
    vgg,
    zfnet,
)
